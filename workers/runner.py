"""One worker process: accord's session, the procrastinate worker, its jobs and chores.

``run_worker`` returns when the worker stops: on SIGTERM or SIGINT it takes no new job, lets
the running ones finish for ``settings.grace`` seconds, then cancels them (a cancelled run
leaves its thread ``running`` at its last checkpoint; the stuck-thread chore, or the job's
retry, continues it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from procrastinate.exceptions import ConnectorException

from accord.checkpoints.errors import DatabaseUnreachable
from accord.engine.session import Session
from accord.workers.app import WorkerSettings, check_database, make_app
from accord.workers.jobs import SESSION_KEY, register_jobs
from accord.workers.periodic import register_periodic

logger = logging.getLogger(__name__)


def worker_name() -> str:
    """``host:pid``: which process ran a job, in the queue's tables and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def run_worker(url: str, settings: WorkerSettings, *,
                     install_signal_handlers: bool = True) -> None:
    """Run jobs from ``settings.queues`` until stopped."""
    await check_database(url)
    app = make_app(url, pool_size=min(6, settings.concurrency + 2))  # jobs are fetched one by one
    register_jobs(app, settings)
    register_periodic(app, settings)
    async with Session.open(url) as session, app.open_async():
        name = worker_name()
        logger.info("worker %s started", name, extra={
            "worker": name, "queues": list(settings.queues), "concurrency": settings.concurrency})
        while True:
            try:
                await app.run_worker_async(
                    queues=list(settings.queues),
                    name=name,
                    concurrency=settings.concurrency,
                    additional_context={SESSION_KEY: session},
                    update_heartbeat_interval=settings.heartbeat,
                    stalled_worker_timeout=settings.stalled_after,
                    shutdown_graceful_timeout=settings.grace,
                    install_signal_handlers=install_signal_handlers,
                )
                break
            except ConnectorException as exc:
                # the queue's connection failed under the worker (a session terminated, a
                # failover): its running jobs were let finish; it takes jobs again once the
                # database answers (what it ran meanwhile is another worker's, or a retry's)
                cause = exc.__cause__ or exc
                logger.warning("worker %s lost the queue's database (%s); starting again",
                               name, str(cause).strip().splitlines()[0] if str(cause).strip()
                               else type(cause).__name__, extra={"worker": name})
                await _until_reachable(url)
        logger.info("worker %s stopped", name, extra={"worker": name})


async def _until_reachable(url: str, *, first: float = 0.5, most: float = 10.0) -> None:
    """Return once the database answers, trying again with exponential backoff."""
    wait = first
    while True:
        try:
            await check_database(url)
            return
        except DatabaseUnreachable:
            await asyncio.sleep(wait)
            wait = min(most, wait * 2)

__all__ = ["run_worker", "worker_name"]
