"""The thread index: one row per thread in ``accord_threads``, next to the checkpoints.

The engine keeps it current on every entry point (Python, notebooks, the CLI, the dev server,
workers): a run claims the thread (status ``running``, the request recorded), each durable step
moves its head, the run's end records ``interrupted`` (with the pending approval), ``done`` or
``failed`` (with the cause). Listing threads or pending approvals is an indexed query.

```python
with open_saver(url) as saver:
    waiting = saver.threads.list(status="interrupted")
```
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from accord.records import ThreadStatus


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ThreadRecord:
    """One thread as the index knows it."""

    thread_id: str
    """The LangGraph thread id (``configurable.thread_id``)."""
    graph: str | None
    """The graph that runs the thread, if recorded."""
    status: ThreadStatus
    """Where the thread stands."""
    created_at: datetime
    """When the thread was first recorded (UTC)."""
    updated_at: datetime
    """When the thread was last recorded (UTC)."""
    pending: Any = None
    """The pending interrupt's payload (an approval request), for an ``interrupted`` thread."""
    error: str | None = None
    """Why the last run failed, for a ``failed`` thread."""
    head: str | None = None
    """The latest checkpoint a run saved."""
    epoch: int = 0
    """How many runs have claimed the thread (the fencing token of the latest)."""
    run_id: str | None = None
    """The run holding the thread while it is ``running``."""
    input: Any = None
    """A request recorded before work started whose first checkpoint was never saved."""
    trace: str | None = None
    """The W3C ``traceparent`` of the latest run's span: a run that resumes the thread joins
    that trace."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO-8601)."""
        return {
            "thread_id": self.thread_id,
            "graph": self.graph,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "pending": self.pending,
            "error": self.error,
        }


class ThreadIndex(Protocol):
    """Read access to the index (``saver.threads``)."""

    def get(self, thread_id: str) -> ThreadRecord | None:
        """The thread's record, or None."""

    def list(
        self,
        status: ThreadStatus | str | None = None,
        limit: int | None = None,
        *,
        updated_before: datetime | None = None,
    ) -> list[ThreadRecord]:
        """Threads, most recently updated first, optionally by status and last update."""

    def delete(self, thread_ids: Iterable[str]) -> int:
        """Forget the threads (their index rows, audit events and tool results)."""

    def upsert(self, thread_id: str, *, graph: str | None = None, status: ThreadStatus | str,
               pending: Any = None) -> ThreadRecord:
        """Record a thread's status by hand (repairs, migrations); runs keep it current."""


class SaverThreads:
    """``saver.threads``: the thread index of one of accord's savers."""

    def __init__(self, saver: Any) -> None:
        self._saver = saver

    def get(self, thread_id: str) -> ThreadRecord | None:
        return self._saver._read(lambda cur: self._saver.dialect.read_thread(cur, str(thread_id)))

    def list(self, status: ThreadStatus | str | None = None, limit: int | None = None, *,
             updated_before: datetime | None = None) -> list[ThreadRecord]:
        return self._saver._read(lambda cur: self._saver.dialect.list_threads(
            cur, status, limit, updated_before))

    def delete(self, thread_ids: Iterable[str]) -> int:
        return self._saver.forget(list(thread_ids))

    def upsert(self, thread_id: str, *, graph: str | None = None, status: ThreadStatus | str,
               pending: Any = None) -> ThreadRecord:
        """Record a thread's status by hand (repairs, migrations); runs keep it current."""
        saver = self._saver
        return saver._transaction(None, lambda cur: saver.dialect.upsert_thread(
            cur, str(thread_id), graph, ThreadStatus(status), pending, saver.clock()))


@contextmanager
def open_thread_index(url: str | None = None, *, clock: Any = None) -> Iterator[ThreadIndex]:
    """The thread index of the database at ``url`` (opens accord's saver for it)."""
    from accord.checkpoints.savers import open_saver

    with open_saver(url) as saver:
        if clock is not None:
            saver.clock = clock
        yield saver.threads


__all__ = ["SaverThreads", "ThreadIndex", "ThreadRecord", "ThreadStatus", "open_thread_index", "utc_now"]
