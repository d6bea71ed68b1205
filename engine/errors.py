"""Errors the engine raises before a run starts: the request or the thread's state refuses it."""

from __future__ import annotations

from typing import Any

from accord.errors import AccordError


class InvalidInput(AccordError):
    """The input does not fit the graph's input schema; nothing was saved."""


class ThreadIdMissing(AccordError, ValueError):
    """A graph with a checkpointer was run without ``configurable.thread_id``; nothing was saved."""

    def __init__(self) -> None:
        super().__init__(
            "this graph has a checkpointer, so every run needs a thread: pass "
            "config={'configurable': {'thread_id': '...'}}")


class ThreadWaiting(AccordError):
    """A new request was sent to a thread that waits for a decision."""

    def __init__(self, thread_id: str, pending: Any) -> None:
        self.thread_id = thread_id
        self.pending = pending
        what = ""
        if isinstance(pending, dict) and pending.get("action_requests"):
            first = pending["action_requests"][0]
            what = f" on {first.get('name')}"
        elif isinstance(pending, dict) and pending.get("action"):
            what = f" on {pending['action']}"
        super().__init__(
            f"thread {thread_id!r} is waiting for a decision{what}; answer it first "
            f"(Command(resume=...); from the CLI: accord resume {thread_id} --approve | "
            "--reject REASON | --edit JSON | --respond MESSAGE)"
        )


class ThreadUnfinished(AccordError):
    """A new request was sent to a thread whose last run stopped before its end."""

    def __init__(self, thread_id: str, error: str | None) -> None:
        self.thread_id = thread_id
        self.error = error
        why = f"failed ({error})" if error else "stopped mid-run"
        super().__init__(
            f"thread {thread_id!r} {why}; continue it first (invoke with input None; from the "
            f"CLI: accord resume {thread_id})"
        )


class NotWaiting(AccordError):
    """A decision was sent to a thread that is not waiting for one."""


__all__ = ["InvalidInput", "NotWaiting", "ThreadIdMissing", "ThreadUnfinished", "ThreadWaiting"]
