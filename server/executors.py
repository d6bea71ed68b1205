"""Where the runs API's work runs: the executor seam.

The routes never run a graph inside a request: they hand a :class:`RunJob` to an executor and
answer at once. Two executors share one small interface:

- :class:`InProcessExecutor` (the embedded default) runs each job as a background asyncio
  task of this process through :class:`~accord.engine.session.Session`, at most
  ``concurrency`` at a time (the others wait their turn, first come first served);
- :class:`QueueExecutor` submits each job to accord's workers
  (``accord.workers.queue.WorkerQueue``, imported when the executor starts) and cancels a job
  that no worker has taken yet.

Either way the engine records everything (thread index, audit log) in the database, which is
where the API reads status and events from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from accord.checkpoints import ThreadRecord
from accord.engine.session import Session
from accord.errors import AccordError
from accord.records import ThreadStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunJob:
    """One unit of work the API queued."""

    graph: str
    """The graph's name (catalog or ``langgraph.json`` id)."""
    thread_id: str
    """The thread it runs on."""
    payload: dict[str, Any] | None = None
    """A new request, ``{"messages": [...]}`` (JSON); None for a resume."""
    resume: Any = None
    """The decision(s) answering the pending approval, for a resume."""
    user: str | None = None
    """The end user the request is for (permissions, rate limits, budgets)."""
    epoch: int = 0
    """The thread's epoch in the index when the job was queued (0: a thread not yet known)."""


class Executor(Protocol):
    """What the runs API needs from an executor."""

    async def start(self) -> None:
        """Open what the executor needs (called by the app's lifespan)."""

    async def stop(self) -> None:
        """Stop: in-process work is cancelled (saved state is kept), connections closed."""

    async def submit(self, job: RunJob) -> None:
        """Queue the job; returns before it runs."""

    def pending(self, thread_id: str, record: ThreadRecord | None) -> bool:
        """Whether queued work for the thread has not been taken up yet (``record`` is the
        thread index's current record)."""

    def last_error(self, thread_id: str) -> str | None:
        """Why this executor's last job on the thread was refused before it ran, if it was."""

    def running(self, thread_id: str) -> bool:
        """Whether this executor runs a job on the thread now (in this process)."""

    async def cancel(self, thread_id: str) -> bool:
        """Drop queued work or stop work in flight; whether there was any to stop."""


def live_status(executor: Executor, thread_id: str, record: ThreadRecord | None) -> str | None:
    """The thread's status as the API shows it: ``running`` while this process runs it,
    ``queued`` while its work waits, ``running`` while a run holds it, else the thread
    index's (None: an unknown thread)."""
    if executor.running(thread_id):
        return "running"
    if executor.pending(thread_id, record):
        return "queued"
    if record is not None and record.run_id is not None:
        # claimed by a run (a resume keeps the waiting status until its first step): running
        return ThreadStatus.RUNNING.value
    return record.status.value if record is not None else None


class ExecutorBusy(AccordError):
    """More jobs are waiting than the executor keeps."""


class InProcessExecutor:
    """Runs jobs in this process as asyncio tasks, ``concurrency`` at a time."""

    def __init__(self, session: Session, *, concurrency: int = 4, backlog: int = 1000) -> None:
        self.session = session
        self.concurrency = concurrency
        self.backlog = backlog
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started: set[str] = set()
        self._errors: dict[str, str] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def submit(self, job: RunJob) -> None:
        waiting = len(self._tasks) - len(self._started)
        if waiting >= self.backlog:
            raise ExecutorBusy(f"{waiting} runs are already waiting; try again later")
        self._errors.pop(job.thread_id, None)
        task = asyncio.create_task(self._run(job), name=f"accord-run-{job.thread_id}")
        self._tasks[job.thread_id] = task
        task.add_done_callback(lambda t, tid=job.thread_id: self._forget(tid, t))

    def _forget(self, thread_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(thread_id) is task:
            del self._tasks[thread_id]
            self._started.discard(thread_id)

    async def _run(self, job: RunJob) -> None:
        async with self._slots:
            self._started.add(job.thread_id)
            try:
                if job.payload is not None:
                    await self.session.drive(job.graph, job.thread_id, job.payload, _quiet,
                                             user=job.user)
                else:
                    await self.session.resume(job.thread_id, job.resume, _quiet, user=job.user)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded for GET /threads/{id}
                self._errors[job.thread_id] = str(exc).splitlines()[0] if str(exc) else repr(exc)
                logger.warning("run on thread %s stopped: %s", job.thread_id,
                               self._errors[job.thread_id])

    def pending(self, thread_id: str, record: ThreadRecord | None) -> bool:
        return thread_id in self._tasks and thread_id not in self._started

    def running(self, thread_id: str) -> bool:
        """Whether a job of this executor runs on the thread now."""
        return thread_id in self._started

    def last_error(self, thread_id: str) -> str | None:
        return self._errors.get(thread_id)

    async def cancel(self, thread_id: str) -> bool:
        task = self._tasks.get(thread_id)
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.wait({task})
        return True


def _quiet(_node: str, _update: Any) -> None:
    """Background runs show nothing; the audit log and the index record what happened."""


QueueFactory = Callable[[str], Any]
"""Builds the worker queue for a database URL (default ``accord.workers.queue.WorkerQueue``)."""


def _worker_queue(url: str) -> Any:
    from accord.workers.queue import WorkerQueue

    return WorkerQueue(url)


class QueueExecutor:
    """Hands jobs to accord's workers through their queue.

    A job is *pending* from its submission until a worker claims the thread (its epoch in the
    thread index moves past the one seen at submission). Cancel removes a job no worker has
    taken; a job a worker already runs is not stopped mid-step (the API answers 409 for it).
    """

    def __init__(self, url: str, *, factory: QueueFactory | None = None) -> None:
        self.url = url
        self._factory = factory or _worker_queue
        self._queue: Any = None
        self._submitted: dict[str, int] = {}
        """Per thread: the epoch its index record had when the job was submitted."""

    async def start(self) -> None:
        self._queue = await self._factory(self.url).__aenter__()

    async def stop(self) -> None:
        if self._queue is not None:
            queue, self._queue = self._queue, None
            await queue.__aexit__(None, None, None)

    async def submit(self, job: RunJob) -> None:
        await self._queue.submit(graph=job.graph, thread_id=job.thread_id, payload=job.payload,
                                 resume=job.resume, user=job.user)
        self._submitted[job.thread_id] = job.epoch

    def pending(self, thread_id: str, record: ThreadRecord | None) -> bool:
        epoch = self._submitted.get(thread_id)
        if epoch is None:
            return False
        if record is not None and record.epoch > epoch:
            del self._submitted[thread_id]  # a worker claimed it
            return False
        return True

    def last_error(self, thread_id: str) -> str | None:
        return None

    def running(self, thread_id: str) -> bool:
        return False

    async def cancel(self, thread_id: str) -> bool:
        removed = bool(await self._queue.cancel(thread_id))
        if removed:
            self._submitted.pop(thread_id, None)
        return removed


__all__ = ["Executor", "ExecutorBusy", "InProcessExecutor", "QueueExecutor", "RunJob",
           "live_status"]
