"""The jobs of accord's workers: run a thread, resume it with a decision, continue it.

Every job goes through :class:`accord.engine.session.Session`, so the engine's guarantees hold
as for any other client: one writer per thread with fencing, the thread index, input checks and
guardrails, the audit log, the tool ledger (an approved action runs once however often its job
runs). Jobs of one thread carry ``lock=thread_id``: procrastinate runs them one at a time, in
the order they were queued.

A job acts on what the thread index says, so running it again is harmless:

- a thread ``running`` without a writer (its worker died) is continued from its last
  checkpoint, whatever the job was asked to do;
- a request or decision whose thread is already done, failed or waiting (for a retried run
  job) is a no-op, logged;
- an error the submitter caused (bad input, unknown graph, a decision for a thread that is not
  waiting) fails the job without retry; procrastinate records it, the log says why;
- a transient failure (database, a busy thread) is retried with exponential backoff.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import psycopg
from procrastinate import App, JobContext, RetryStrategy
from psycopg_pool import PoolTimeout

from accord.checkpoints.errors import DatabaseUnreachable, ThreadBusy, WriterFenced
from accord.engine.session import RunOutcome, Session
from accord.errors import AccordError
from accord.records import ThreadStatus
from accord.workers.app import CONTINUE_TASK, RESUME_TASK, RUN_TASK, WorkerSettings

logger = logging.getLogger(__name__)

TRANSIENT: tuple[type[Exception], ...] = (
    psycopg.OperationalError, PoolTimeout, DatabaseUnreachable, ThreadBusy, WriterFenced,
    ConnectionError, TimeoutError,
)
"""Failures worth another attempt; anything else fails the job at once."""

SESSION_KEY = "accord_session"
"""Where a worker's :class:`Session` sits in procrastinate's ``additional_context``."""


def _session(context: JobContext) -> Session:
    return context.additional_context[SESSION_KEY]


def _log(context: JobContext, what: str, thread_id: str, **fields: Any) -> None:
    logger.info("%s %s", what, thread_id, extra={
        "job_id": context.job.id, "task": context.job.task_name, "thread_id": thread_id,
        "attempt": context.job.attempts, "worker": context.worker_name, "pid": os.getpid(),
        **fields})


def _on_step(thread_id: str) -> Any:
    def step(node: str, _update: Any) -> None:
        logger.debug("step %s of %s", node, thread_id, extra={"thread_id": thread_id,
                                                               "node": node})
    return step


async def _continue(session: Session, thread_id: str, record: Any) -> RunOutcome:
    name = await session.graph_of(thread_id, record)
    return await session.drive(name, thread_id, None, _on_step(thread_id))


async def _guarded(context: JobContext, thread_id: str, work: Any) -> str:
    _log(context, "job started", thread_id)
    try:
        outcome = await work
    except TRANSIENT:
        _log(context, "job will be retried", thread_id)
        raise
    except AccordError as exc:
        _log(context, "job refused", thread_id, error=str(exc))
        raise
    status = outcome if isinstance(outcome, str) else outcome.status
    _log(context, "job finished", thread_id, status=status)
    return status


async def run_thread(context: JobContext, *, graph: str, thread_id: str, payload: Any,
                     user: str | None = None) -> str:
    """A new request on ``thread_id``; a stopped run of it is continued instead."""
    session = _session(context)

    async def work() -> RunOutcome | str:
        record = await session.record(thread_id)
        if record is not None and record.status is ThreadStatus.RUNNING:
            return await _continue(session, thread_id, record)
        first = context.job.attempts == 0
        if record is None or (first and record.status is ThreadStatus.DONE):
            return await session.drive(graph, thread_id, payload, _on_step(thread_id), user=user)
        return f"no-op ({record.status.value})"

    return await _guarded(context, thread_id, work())


async def resume_thread(context: JobContext, *, thread_id: str, resume: Any,
                        user: str | None = None) -> str:
    """A decision for ``thread_id`` (``Command(resume=resume)``); a thread that stopped
    mid-run (perhaps acting on this very decision) is continued instead."""
    session = _session(context)

    async def work() -> RunOutcome | str:
        record = await session.record(thread_id)
        if record is not None and record.status is ThreadStatus.RUNNING:
            return await _continue(session, thread_id, record)
        if record is not None and record.status is not ThreadStatus.INTERRUPTED:
            return f"no-op ({record.status.value})"
        return await session.resume(thread_id, resume, _on_step(thread_id), user=user)

    return await _guarded(context, thread_id, work())


async def continue_thread(context: JobContext, *, thread_id: str) -> str:
    """Drive a thread that stopped mid-run from its last checkpoint; anything else is a no-op
    (so is a thread another process is running right now)."""
    session = _session(context)

    async def work() -> RunOutcome | str:
        record = await session.record(thread_id)
        if record is None or record.status is not ThreadStatus.RUNNING:
            return f"no-op ({record.status.value if record else 'unknown'})"
        try:
            return await _continue(session, thread_id, record)
        except ThreadBusy:
            return "no-op (held by another writer)"

    return await _guarded(context, thread_id, work())


def retry_strategy(settings: WorkerSettings) -> RetryStrategy:
    """Transient failures only, with exponential backoff (2, 4, 8, ... seconds)."""
    return RetryStrategy(max_attempts=settings.max_attempts, exponential_wait=2,
                         retry_exceptions=TRANSIENT)


def register_jobs(app: App, settings: WorkerSettings) -> None:
    """Declare the three jobs on ``app``."""
    retry = retry_strategy(settings)
    for name, func in ((RUN_TASK, run_thread), (RESUME_TASK, resume_thread),
                       (CONTINUE_TASK, continue_thread)):
        app.task(name=name, pass_context=True, retry=retry, queue=settings.queues[0])(func)


__all__ = ["SESSION_KEY", "TRANSIENT", "continue_thread", "register_jobs", "resume_thread",
           "retry_strategy", "run_thread"]
