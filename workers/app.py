"""The procrastinate app of accord's workers, over the database that holds the checkpoints.

The connector opens the URL accord opens, as it is: a ``search_path`` given in the URL's
``options`` (``?options=-csearch_path%3Dtenant``) applies to the queue's tables too, so a
schema holds one deployment's checkpoints and jobs together. The queue's tables are
procrastinate's own schema, created by :func:`apply_schema` (``accord worker --init``); a
database without them is :class:`~accord.workers.errors.SchemaMissing`, never a traceback.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate.schema import SchemaManager

from accord.checkpoints.connections import probe_postgres, run_setup_once
from accord.checkpoints.urls import Backend, parse_url, resolve_url
from accord.workers.errors import SchemaMissing, WorkersError

QUEUE = "accord"
"""The queue accord's jobs go to unless told otherwise."""

RUN_TASK = "accord.run_thread"
"""A new request on a thread."""
RESUME_TASK = "accord.resume_thread"
"""A decision for a thread that waits for one."""
CONTINUE_TASK = "accord.continue_thread"
"""Continue a thread that stopped mid-run, from its last checkpoint."""

_SCHEMA_PRESENT = "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS ok"


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker process runs jobs and its periodic chores."""

    queues: tuple[str, ...] = (QUEUE,)
    """The queues it takes jobs from; periodic chores go to the first."""
    concurrency: int = 4
    """Jobs it runs at once (one event loop)."""
    heartbeat: float = 10.0
    """Seconds between the worker's heartbeats."""
    stalled_after: float = 30.0
    """A worker silent this long is dead: its jobs are given to another worker."""
    chores_every: int = 10
    """Seconds between two rounds of periodic chores (stalled jobs, stuck threads)."""
    stuck_after: float = 600.0
    """A thread ``running`` without an update for this long, and held by no job, is driven
    again from its last checkpoint."""
    retention: str | None = None
    """Threads idle longer than this (``7d``) are pruned every hour; None keeps them all."""
    max_attempts: int = 5
    """Attempts of a job that fails for a transient reason (database, busy thread)."""
    grace: float = 30.0
    """Seconds a stopping worker lets its jobs finish before it cancels them."""


def postgres_url(url: str | None) -> str:
    """The configured URL, which must be PostgreSQL (the queue lives there)."""
    chosen = resolve_url(url)
    if parse_url(chosen).backend is not Backend.POSTGRES:
        raise WorkersError(f"accord's workers need PostgreSQL; {parse_url(chosen).display} is not "
                           "(pass --db postgresql://... or set ACCORD_DB_URL)")
    return chosen


def make_app(url: str, *, pool_size: int = 10) -> App:
    """A procrastinate app on ``url`` (not opened), with no tasks of its own."""
    # procrastinate's pool checks each connection it hands out; a session that ends while in
    # use fails its query, and the worker starts again (``accord.workers.runner``)
    return App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=pool_size))


async def check_database(url: str) -> None:
    """Raise ``DatabaseUnreachable`` or ``SchemaMissing`` (one clear line each)."""
    db = parse_url(url)
    await asyncio.to_thread(probe_postgres, db)
    if not await asyncio.to_thread(_schema_present, url):
        raise SchemaMissing(db.display)


def _schema_present(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(_SCHEMA_PRESENT).fetchone()
        return bool(row and row[0])


def apply_schema(url: str) -> bool:
    """Create procrastinate's schema where ``url`` points, once; True if it was created.

    Processes that run ``--init`` together take turns (accord's set-up advisory lock).
    """
    probe_postgres(parse_url(url))
    created: list[bool] = []

    def setup() -> None:
        if _schema_present(url):
            return
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SchemaManager.get_schema())
        created.append(True)

    run_setup_once("procrastinate", url, setup)
    return bool(created)


__all__ = ["CONTINUE_TASK", "QUEUE", "RESUME_TASK", "RUN_TASK", "WorkerSettings",
           "apply_schema", "check_database", "make_app", "postgres_url"]
