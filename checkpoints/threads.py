"""The thread index: one row per thread in `accord_threads`, next to the checkpoints.

Listing threads or pending approvals is then an indexed query instead of a scan of checkpoints.
Whoever runs a graph keeps it current with `upsert`; `prune` deletes the rows of deleted threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from accord.checkpoints.connections import (
    CONNECT_TIMEOUT,
    connect_sqlite,
    postgres_pool,
    run_setup_once,
)
from accord.checkpoints.urls import Backend, parse_url, resolve_url

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""


class ThreadStatus(StrEnum):
    """Where a thread stands."""

    RUNNING = "running"
    INTERRUPTED = "interrupted"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ThreadRecord:
    """One thread as the index knows it."""

    thread_id: str
    """The LangGraph thread id (`configurable.thread_id`)."""
    graph: str | None
    """The graph that runs the thread, if recorded."""
    status: ThreadStatus
    """Where the thread stands."""
    created_at: datetime
    """When the thread was first recorded (UTC)."""
    updated_at: datetime
    """When the thread was last recorded (UTC)."""
    pending: Any = None
    """JSON payload of the pending interrupt(s), for an `interrupted` thread."""


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


class ThreadIndex(ABC):
    """The `accord_threads` table of one database."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock

    @abstractmethod
    def upsert(
        self,
        thread_id: str,
        *,
        graph: str | None = None,
        status: ThreadStatus | str,
        pending: Any = None,
    ) -> ThreadRecord:
        """Record the thread's status now; `graph=None` keeps the graph already recorded."""

    @abstractmethod
    def get(self, thread_id: str) -> ThreadRecord | None:
        """The thread's record, or None."""

    @abstractmethod
    def list(
        self,
        status: ThreadStatus | str | None = None,
        limit: int | None = None,
        *,
        updated_before: datetime | None = None,
    ) -> list[ThreadRecord]:
        """Threads, most recently updated first, optionally by status and last update."""

    @abstractmethod
    def delete(self, thread_ids: Iterable[str]) -> int:
        """Forget the threads; return how many rows went."""


class MemoryThreadIndex(ThreadIndex):
    """A thread index held by this object only (for `memory://`)."""

    def __init__(self, clock: Clock = utc_now) -> None:
        super().__init__(clock)
        self._rows: dict[str, ThreadRecord] = {}
        self._lock = threading.Lock()

    def upsert(self, thread_id, *, graph=None, status, pending=None):
        now = self.clock()
        with self._lock:
            old = self._rows.get(thread_id)
            record = ThreadRecord(
                thread_id=thread_id,
                graph=graph if graph is not None else (old.graph if old else None),
                status=ThreadStatus(status),
                created_at=old.created_at if old else now,
                updated_at=now,
                pending=pending,
            )
            self._rows[thread_id] = record
            return record

    def get(self, thread_id):
        return self._rows.get(thread_id)

    def list(self, status=None, limit=None, *, updated_before=None):
        rows = [
            r
            for r in self._rows.values()
            if (status is None or r.status == ThreadStatus(status))
            and (updated_before is None or r.updated_at < updated_before)
        ]
        rows.sort(key=lambda r: r.updated_at, reverse=True)
        return rows[:limit] if limit is not None else rows

    def delete(self, thread_ids):
        with self._lock:
            return sum(self._rows.pop(t, None) is not None for t in thread_ids)


_COLUMNS = "thread_id, graph, status, created_at, updated_at, pending"


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteThreadIndex(ThreadIndex):
    """The thread index in a SQLite file (timestamps stored as sortable UTC ISO text)."""

    DDL = """
        CREATE TABLE IF NOT EXISTS accord_threads (
            thread_id TEXT PRIMARY KEY,
            graph TEXT,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            pending TEXT
        );
        CREATE INDEX IF NOT EXISTS accord_threads_status_updated
            ON accord_threads (status, updated_at);
        CREATE INDEX IF NOT EXISTS accord_threads_updated ON accord_threads (updated_at);
    """

    def __init__(self, conn: sqlite3.Connection, clock: Clock = utc_now) -> None:
        super().__init__(clock)
        self.conn = conn
        self._lock = threading.Lock()
        with self._lock:
            conn.executescript(self.DDL)

    def _record(self, row: tuple) -> ThreadRecord:
        tid, graph, status, created, updated, pending = row
        return ThreadRecord(
            thread_id=tid,
            graph=graph,
            status=ThreadStatus(status),
            created_at=datetime.fromisoformat(created),
            updated_at=datetime.fromisoformat(updated),
            pending=json.loads(pending) if pending is not None else None,
        )

    def upsert(self, thread_id, *, graph=None, status, pending=None):
        now = _iso(self.clock())
        with self._lock, self.conn:
            row = self.conn.execute(
                f"INSERT INTO accord_threads ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (thread_id) DO UPDATE SET "
                "graph = COALESCE(excluded.graph, accord_threads.graph), "
                "status = excluded.status, updated_at = excluded.updated_at, "
                f"pending = excluded.pending RETURNING {_COLUMNS}",
                (
                    thread_id,
                    graph,
                    ThreadStatus(status).value,
                    now,
                    now,
                    json.dumps(pending) if pending is not None else None,
                ),
            ).fetchone()
        return self._record(row)

    def get(self, thread_id):
        with self._lock:
            row = self.conn.execute(
                f"SELECT {_COLUMNS} FROM accord_threads WHERE thread_id = ?", (thread_id,)
            ).fetchone()
        return self._record(row) if row else None

    def list(self, status=None, limit=None, *, updated_before=None):
        where, params = _filters(status, updated_before, "?", _iso)
        sql = f"SELECT {_COLUMNS} FROM accord_threads{where} ORDER BY updated_at DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return [self._record(r) for r in self.conn.execute(sql, params).fetchall()]

    def delete(self, thread_ids):
        ids = json.dumps([str(t) for t in thread_ids])
        with self._lock, self.conn:
            cur = self.conn.execute(
                "DELETE FROM accord_threads WHERE thread_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            return cur.rowcount


def _filters(status, updated_before, mark: str, ts: Callable) -> tuple[str, list]:
    clauses, params = [], []
    if status is not None:
        clauses.append(f"status = {mark}")
        params.append(ThreadStatus(status).value)
    if updated_before is not None:
        clauses.append(f"updated_at < {mark}")
        params.append(ts(updated_before))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class PostgresThreadIndex(ThreadIndex):
    """The thread index in PostgreSQL (`timestamptz`, `jsonb`)."""

    DDL = (
        """CREATE TABLE IF NOT EXISTS accord_threads (
            thread_id TEXT PRIMARY KEY,
            graph TEXT,
            status TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            pending JSONB
        )""",
        """CREATE INDEX IF NOT EXISTS accord_threads_status_updated
            ON accord_threads (status, updated_at)""",
        "CREATE INDEX IF NOT EXISTS accord_threads_updated ON accord_threads (updated_at)",
    )

    def __init__(self, pool: ConnectionPool, clock: Clock = utc_now) -> None:
        super().__init__(clock)
        self.pool = pool

    def setup(self) -> None:
        """Create the table and indexes if missing (idempotent)."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('accord_threads ddl'))")
            for ddl in self.DDL:
                conn.execute(ddl)

    @staticmethod
    def _record(row: dict) -> ThreadRecord:
        return ThreadRecord(**{**row, "status": ThreadStatus(row["status"])})

    def upsert(self, thread_id, *, graph=None, status, pending=None):
        now = self.clock()
        with self.pool.connection() as conn:
            row = conn.execute(
                f"INSERT INTO accord_threads ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (thread_id) DO UPDATE SET "
                "graph = COALESCE(EXCLUDED.graph, accord_threads.graph), "
                "status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, "
                f"pending = EXCLUDED.pending RETURNING {_COLUMNS}",
                (
                    thread_id,
                    graph,
                    ThreadStatus(status).value,
                    now,
                    now,
                    Jsonb(pending) if pending is not None else None,
                ),
            ).fetchone()
        return self._record(row)

    def get(self, thread_id):
        with self.pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM accord_threads WHERE thread_id = %s", (thread_id,)
            ).fetchone()
        return self._record(row) if row else None

    def list(self, status=None, limit=None, *, updated_before=None):
        where, params = _filters(status, updated_before, "%s", lambda t: t)
        sql = f"SELECT {_COLUMNS} FROM accord_threads{where} ORDER BY updated_at DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        with self.pool.connection() as conn:
            return [self._record(r) for r in conn.execute(sql, params).fetchall()]

    def delete(self, thread_ids):
        with self.pool.connection() as conn:
            cur = conn.execute(
                "DELETE FROM accord_threads WHERE thread_id = ANY(%s)",
                ([str(t) for t in thread_ids],),
            )
            return cur.rowcount


@contextmanager
def open_thread_index(
    url: str | None = None, *, clock: Clock = utc_now, timeout: float = CONNECT_TIMEOUT
) -> Iterator[ThreadIndex]:
    """Yield the thread index of the database at `url` (created on first use)."""
    db = parse_url(resolve_url(url))
    if db.backend is Backend.MEMORY:
        yield MemoryThreadIndex(clock)
    elif db.backend is Backend.SQLITE:
        conn = connect_sqlite(db)
        try:
            yield SqliteThreadIndex(conn, clock)
        finally:
            conn.close()
    else:
        with postgres_pool(db, timeout=timeout, max_size=4) as pool:
            index = PostgresThreadIndex(pool, clock)
            run_setup_once("thread_index", db.url, index.setup)
            yield index


__all__ = [
    "ThreadIndex",
    "ThreadRecord",
    "ThreadStatus",
    "open_thread_index",
]
