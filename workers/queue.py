"""Submitting runs to accord's workers: one job per request or decision, in PostgreSQL.

```python
async with WorkerQueue("postgresql://.../accord") as queue:
    job = await queue.submit(graph="support", thread_id="t-1",
                             payload={"messages": [{"role": "user", "content": "..."}]})
    ...
    await queue.submit(graph="support", thread_id="t-1", resume={"decisions": [
        {"type": "approve"}], "by": "manager"})
```

A job carries ``lock=thread_id`` (one thread runs on one worker at a time, its jobs in order)
and ``queueing_lock=thread_id`` (one job waiting per thread: a second raises
:class:`~accord.workers.errors.AlreadyQueued`).
"""

from __future__ import annotations

from typing import Any

from procrastinate import App
from procrastinate.exceptions import AlreadyEnqueued

from accord.workers.app import (
    QUEUE,
    RESUME_TASK,
    RUN_TASK,
    check_database,
    make_app,
    postgres_url,
)
from accord.workers.errors import AlreadyQueued, BadSubmission


class WorkerQueue:
    """Submits accord runs to the workers' queue in PostgreSQL."""

    def __init__(self, url: str, *, queue: str = QUEUE) -> None:
        self.url = url
        """The database of the checkpoints and the queue (``search_path`` options honoured)."""
        self.queue = queue
        """The queue jobs go to."""
        self._app: App | None = None

    async def __aenter__(self) -> WorkerQueue:
        url = postgres_url(self.url)
        await check_database(url)
        app = make_app(url, pool_size=4)
        await app.open_async()
        self._app = app
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._app is not None:
            await self._app.close_async()
            self._app = None

    @property
    def app(self) -> App:
        if self._app is None:
            raise RuntimeError("use WorkerQueue as `async with WorkerQueue(url) as queue:`")
        return self._app

    async def submit(self, *, graph: str, thread_id: str, payload: dict | None = None,
                     resume: Any = None, user: str | None = None) -> int:
        """Queue a new request (``payload``, the graph's input) or a decision for a waiting
        thread (``resume``, the value of ``Command(resume=...)``); the job's id."""
        if (payload is None) == (resume is None):
            raise BadSubmission("submit needs exactly one of payload= (a new request) and "
                                "resume= (a decision for a waiting thread)")
        if resume is None:
            task, args = RUN_TASK, {"graph": graph, "thread_id": thread_id, "payload": payload}
        else:
            task, args = RESUME_TASK, {"thread_id": thread_id, "resume": resume}
        if user is not None:
            args["user"] = user
        deferrer = self.app.configure_task(task, queue=self.queue, lock=thread_id,
                                           queueing_lock=thread_id)
        try:
            return await deferrer.defer_async(**args)
        except AlreadyEnqueued:
            raise AlreadyQueued(thread_id) from None

    async def cancel(self, thread_id: str) -> bool:
        """Cancel the thread's jobs that have not started; whether there were any."""
        jobs = await self.app.job_manager.list_jobs_async(queue=self.queue, lock=thread_id,
                                                          status="todo")
        cancelled = [await self.app.job_manager.cancel_job_by_id_async(job.id)
                     for job in jobs if job.id is not None]
        return any(cancelled)


__all__ = ["WorkerQueue"]
