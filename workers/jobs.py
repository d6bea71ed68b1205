"""The jobs of accord's workers: run a thread, resume it with a decision, continue it.

Every job goes through :class:`accord.engine.session.Session`, so the engine's guarantees hold
as for any other client: one writer per thread with fencing, the thread index, input checks and
guardrails, the audit log, the tool ledger (an approved action runs once however often its job
runs). Jobs of one thread carry ``lock=thread_id``: procrastinate runs them one at a time, in
the order they were queued.

A job acts on what the thread index says, so running it again is harmless:

- a thread ``running`` without a writer (its worker died) is continued from its last
  checkpoint, whatever the job was asked to do;
- a request the thread already took (its last user message's id: the job's, unless the
  submitter gave one), or a decision whose thread is done or failed, is a no-op, logged;
- a job claims its thread only as it read it (the thread's epoch): a job that was handed to
  another worker while this one was thought dead (slow, or cut off from the database) finds the
  thread moved on and does nothing;
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
from accord.engine.errors import ThreadMovedOn
from accord.engine.session import RunOutcome, Session, config_for
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


def _as_seen(record: Any) -> dict[str, Any]:
    """The claim holds only while the thread is as this job read it: a job that another worker
    ran meanwhile (this one was thought dead, and was only slow or cut off) does nothing."""
    return {ThreadMovedOn.EXPECT_KEY: record.epoch if record is not None else 0}


async def _continue(session: Session, thread_id: str, record: Any) -> RunOutcome:
    name = await session.graph_of(thread_id, record)
    return await session.drive(name, thread_id, None, _on_step(thread_id), _as_seen(record))


async def _guarded(context: JobContext, thread_id: str, work: Any) -> str:
    _log(context, "job started", thread_id)
    try:
        outcome = await work
    except ThreadMovedOn as moved:
        _log(context, "job finished", thread_id, status="no-op (moved on)", error=str(moved))
        return "no-op (moved on)"
    except TRANSIENT:
        _log(context, "job will be retried", thread_id)
        raise
    except AccordError as exc:
        _log(context, "job refused", thread_id, error=str(exc))
        raise
    status = outcome if isinstance(outcome, str) else outcome.status
    _log(context, "job finished", thread_id, status=status)
    return status


def _with_request_id(payload: Any, job_id: int) -> tuple[Any, str | None]:
    """The request with an id on its last user message (the job's, unless the submitter gave
    one): the thread shows whether this request was taken, whichever worker took it."""
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list):
        return payload, None  # the engine refuses it with one line
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role", message.get("type")) in (
                "user", "human"):
            if not message.get("id"):
                message = {**message, "id": f"accord-job-{job_id}"}
                messages = [*messages[:index], message, *messages[index + 1:]]
            return {**payload, "messages": messages}, str(message["id"])
    return payload, None


async def _taken(session: Session, thread_id: str, record: Any, request_id: str | None) -> bool:
    """Whether the thread already took the request ``request_id`` (recorded with a claim, or
    in its messages)."""
    if request_id is None:
        return False
    recorded = (record.input or {}).get("messages") if isinstance(record.input, dict) else None
    if any(isinstance(m, dict) and (m.get("data") or {}).get("id") == request_id
           for m in recorded or ()):
        return True
    name = await session.graph_of(thread_id, record)
    snapshot = await session.graph(name).aget_state(config_for(thread_id))
    return any(getattr(m, "id", None) == request_id
               for m in (snapshot.values or {}).get("messages") or ())


async def run_thread(context: JobContext, *, graph: str, thread_id: str, payload: Any,
                     user: str | None = None) -> str:
    """A new request on ``thread_id``; a stopped run of it is continued instead."""
    session = _session(context)
    payload, request_id = _with_request_id(payload, context.job.id or 0)

    async def work() -> RunOutcome | str:
        record = await session.record(thread_id)
        if record is not None and record.status is ThreadStatus.RUNNING:
            return await _continue(session, thread_id, record)
        if record is not None and (record.status is not ThreadStatus.DONE
                                   or await _taken(session, thread_id, record, request_id)):
            return f"no-op ({record.status.value})"
        # the claim holds only if no run claimed the thread since this read
        return await session.drive(graph, thread_id, payload, _on_step(thread_id),
                                   _as_seen(record), user=user)

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
        return await session.resume(thread_id, resume, _on_step(thread_id), user=user,
                                    configurable=_as_seen(record))

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
