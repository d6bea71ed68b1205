"""Cancelling a thread: the thread ends ``failed`` with who cancelled it and why.

The record is one transaction: the thread index moves to ``failed`` (with the cause) and a
``run_failed`` audit event carries ``cancelled``, ``by`` and ``reason``. It is fenced like a
run's end: it applies only while the thread's epoch is the one read, so a run that claimed the
thread in between is never overwritten. A thread the index does not know yet (work queued but
never started) gets a record of its own. A finished thread (``done`` or ``failed``) cannot be
cancelled. ``accord resume`` continues a cancelled thread from its last checkpoint.
"""

from __future__ import annotations

from typing import Any

from accord.checkpoints import AccordSaver, ThreadRecord
from accord.errors import AccordError
from accord.records import AuditKind, ThreadStatus, audit_event

CANCELLABLE = frozenset({ThreadStatus.RUNNING, ThreadStatus.INTERRUPTED})
"""Statuses a cancel applies to (a thread the index does not know is cancellable too)."""


class NotCancellable(AccordError):
    """A cancel was asked for a thread that is finished, or that another run claimed meanwhile."""


def cancel_cause(by: str | None, reason: str) -> str:
    """The cause a cancelled thread records."""
    return f"cancelled by {by}: {reason}" if by else f"cancelled: {reason}"


def record_cancel(saver: AccordSaver, thread_id: str, *, graph: str | None, by: str | None,
                  reason: str, expected: ThreadRecord | None) -> ThreadRecord:
    """Mark the thread ``failed`` as cancelled, if it is still as ``expected`` (blocking I/O)."""
    if expected is not None and expected.status not in CANCELLABLE:
        raise NotCancellable(f"thread {thread_id!r} is {expected.status.value}; "
                             "there is nothing to cancel")
    cause = cancel_cause(by, reason)
    event = audit_event(AuditKind.RUN_FAILED, error=cause, cancelled=True, by=by, reason=reason)

    def body(cur: Any) -> ThreadRecord | None:
        dialect, now = saver.dialect, saver.clock()
        epoch = expected.epoch if expected is not None else 0
        if expected is None:
            current = dialect.read_thread(cur, thread_id)
            if current is not None:
                return None  # a run claimed the thread after it was read
            dialect.upsert_thread(cur, thread_id, graph, ThreadStatus.FAILED, None, now)
        if not dialect.finish(cur, thread_id, epoch, ThreadStatus.FAILED, None, cause, now):
            return None
        dialect.insert_events(cur, thread_id, [(expected.head if expected else None, event)])
        return dialect.read_thread(cur, thread_id)

    record = saver._transaction(None, body)
    if record is None:
        raise NotCancellable(f"thread {thread_id!r} was claimed by another run meanwhile; "
                             "read its status and cancel again")
    return record


__all__ = ["CANCELLABLE", "NotCancellable", "cancel_cause", "record_cancel"]
