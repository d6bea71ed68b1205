"""Periodic chores of accord's workers (procrastinate periodic tasks: whichever worker is
free takes each round, exactly one per round).

- ``accord.requeue_stalled``: jobs of a worker that stopped sending heartbeats (killed, its
  machine gone) go back to the queue; another worker runs them again, from the thread's last
  checkpoint, and the tool ledger keeps their side effects to one.
- ``accord.redrive_stuck``: threads the index shows ``running`` with no update for a while and
  no job holding them get a continue job.
- ``accord.forget_succeeded``: hourly, succeeded jobs older than a day.
- ``accord.prune``: hourly, threads idle longer than the retention (``accord prune
  --older-than``) and the queue's finished jobs as old.

Shared context needs no chore: the router drops entries older than the workflow's
``context_ttl`` on every hop (``accord.graphs.state.expired_context``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from procrastinate import App, JobContext
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Status

from accord.checkpoints import prune_saver
from accord.checkpoints.threads import utc_now
from accord.records import ThreadStatus
from accord.workers.app import CONTINUE_TASK, WorkerSettings
from accord.workers.jobs import SESSION_KEY

logger = logging.getLogger(__name__)

JOB_HISTORY_HOURS = 24
"""Hours a succeeded job stays in the queue's table."""

_HELD = ("SELECT count(*) AS n FROM procrastinate_jobs "
         "WHERE lock = %(lock)s AND status IN ('todo', 'doing')")


async def requeue_stalled(app: App, settings: WorkerSettings) -> list[int]:
    """Give the jobs of silent workers back to the queue; their ids.

    A stalled job whose thread already has a job waiting (a decision queued while it ran) is
    finished ``failed`` instead: two jobs of one thread cannot both wait, and the waiting one
    carries the thread on from its last checkpoint (a job acts on what the thread index says).
    """
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=settings.stalled_after)
    ids = []
    for job in stalled:
        fields = {"job_id": job.id, "thread_id": job.lock, "task": job.task_name}
        try:
            await app.job_manager.retry_job(job)
        except UniqueViolation:
            await app.job_manager.finish_job(job, Status.FAILED, delete_job=False)
            logger.warning("job %s of a silent worker finished: its thread has a job waiting",
                           job.id, extra=fields)
            continue
        logger.warning("job %s of a silent worker requeued", job.id, extra=fields)
        ids.append(job.id)
    return ids


async def redrive_stuck(app: App, session: object, settings: WorkerSettings) -> list[str]:
    """Queue a continue job for every stuck thread no job holds; the threads."""
    saver = session.saver  # type: ignore[attr-defined]
    before = utc_now() - timedelta(seconds=settings.stuck_after)
    stuck = await saver._offload(saver.threads.list, ThreadStatus.RUNNING, None,
                                 updated_before=before)
    queued = []
    for record in stuck:
        row = await app.connector.execute_query_one_async(_HELD, lock=record.thread_id)
        if row["n"]:
            continue
        try:
            await app.configure_task(CONTINUE_TASK, queue=settings.queues[0],
                                     lock=record.thread_id, queueing_lock=record.thread_id,
                                     ).defer_async(thread_id=record.thread_id)
        except AlreadyEnqueued:
            continue
        logger.warning("stuck thread %s driven again", record.thread_id,
                       extra={"thread_id": record.thread_id,
                              "updated_at": record.updated_at.isoformat()})
        queued.append(record.thread_id)
    return queued


async def prune_retention(app: App, session: object, settings: WorkerSettings) -> int:
    """Delete threads and finished jobs older than the retention; how many threads."""
    if not settings.retention:
        return 0
    from accord.cli.timetravel import parse_duration

    age = parse_duration(settings.retention)
    saver = session.saver  # type: ignore[attr-defined]
    report = await saver._offload(prune_saver, saver, older_than=age)
    await app.job_manager.delete_old_jobs(nb_hours=max(1, int(age.total_seconds() // 3600)))
    logger.info("pruned %d threads", len(report.threads_deleted),
                extra={"threads_deleted": len(report.threads_deleted)})
    return len(report.threads_deleted)


def register_periodic(app: App, settings: WorkerSettings) -> None:
    """Declare the chores on ``app``."""
    every = f"*/{settings.chores_every} * * * * *"
    queue = settings.queues[0]

    @app.periodic(cron=every, periodic_id="stalled")
    @app.task(name="accord.requeue_stalled", pass_context=True, queue=queue)
    async def stalled_chore(context: JobContext, timestamp: int) -> None:
        await requeue_stalled(context.app, settings)

    @app.periodic(cron=every, periodic_id="stuck")
    @app.task(name="accord.redrive_stuck", pass_context=True, queue=queue)
    async def stuck_chore(context: JobContext, timestamp: int) -> None:
        await redrive_stuck(context.app, context.additional_context[SESSION_KEY], settings)

    @app.periodic(cron="30 * * * *", periodic_id="history")
    @app.task(name="accord.forget_succeeded", queue=queue)
    async def history_chore(timestamp: int) -> None:
        # the chores alone leave a row per round: succeeded jobs are kept a day (failed ones
        # stay until pruned); a thread's own record is its audit log
        await app.job_manager.delete_old_jobs(nb_hours=JOB_HISTORY_HOURS)

    if settings.retention:
        @app.periodic(cron="0 * * * *", periodic_id="prune")
        @app.task(name="accord.prune", pass_context=True, queue=queue)
        async def prune_chore(context: JobContext, timestamp: int) -> None:
            await prune_retention(context.app, context.additional_context[SESSION_KEY],
                                  settings)


__all__ = ["prune_retention", "redrive_stuck", "register_periodic", "requeue_stalled"]
