"""One worker process: accord's session, the procrastinate worker, its jobs and chores.

``run_worker`` returns when the worker stops: on SIGTERM or SIGINT it takes no new job, lets
the running ones finish for ``settings.grace`` seconds, then cancels them (a cancelled run
leaves its thread ``running`` at its last checkpoint; the stuck-thread chore, or the job's
retry, continues it).
"""

from __future__ import annotations

import logging
import os
import socket

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
        logger.info("worker %s stopped", name, extra={"worker": name})


__all__ = ["run_worker", "worker_name"]
