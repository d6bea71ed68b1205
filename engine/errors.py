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


class ThreadMovedOn(AccordError):
    """A run was asked for on the thread as it was at some epoch, and another run has claimed
    the thread since (a queued job that another worker already ran): nothing was done."""

    EXPECT_KEY = "accord_expect_epoch"
    """The ``configurable`` key that asks for this check (the epoch the caller saw; 0 for a
    thread that did not exist yet)."""

    def __init__(self, thread_id: str, expected: int, epoch: int) -> None:
        self.thread_id = thread_id
        self.expected = expected
        self.epoch = epoch
        super().__init__(
            f"thread {thread_id!r} moved on: another run claimed it since (epoch {epoch}, this "
            f"run was asked for at epoch {expected}); nothing was done")


class NotWaiting(AccordError):
    """A decision was sent to a thread that is not waiting for one."""


class DecisionRecorded(NotWaiting):
    """A decision was sent to a thread whose earlier decision is already recorded: its action
    may have run, so the new one cannot apply (continue the thread to finish the recorded one)."""

    def __init__(self, thread_id: str, recorded: dict[str, Any]) -> None:
        self.thread_id = thread_id
        self.recorded = recorded
        given = recorded.get("decisions")
        what = (", ".join(str(d.get("type")) for d in given if isinstance(d, dict))
                if isinstance(given, list) else recorded.get("decision"))
        by = next((d.get("by") for d in given or () if isinstance(d, dict) and d.get("by")),
                  None) if isinstance(given, list) else recorded.get("by")
        by = f" by {by}" if by else ""
        super().__init__(
            f"thread {thread_id!r} already has a decision ({what}{by}), "
            "recorded before its action ran; a new decision cannot change it. Continue the "
            f"thread to finish it (invoke with input None; from the CLI: accord resume "
            f"{thread_id})"
        )


class RunFailed(AccordError):
    """A node ended the run ``failed`` without raising (an approved action that failed after
    its approval): the node's step is saved, the thread is ``failed`` with the cause."""

    def __init__(self, thread_id: str, node: str, cause: str) -> None:
        self.thread_id = thread_id
        self.node = node
        self.cause = cause
        super().__init__(f"thread {thread_id!r} failed at {node}: {cause}")


__all__ = ["DecisionRecorded", "InvalidInput", "NotWaiting", "RunFailed", "ThreadIdMissing",
           "ThreadUnfinished", "ThreadWaiting"]
