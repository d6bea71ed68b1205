"""Dead letters: work accord could not finish, kept with what it takes to try again.

The engine stores one for every run that ends ``failed`` (a refused handoff among them: expired,
corrupt, of an unknown schema version, invalid for its recipient), in the transaction that
records the failure. A node that gives a task up (its retries and fallbacks exhausted) adds
:func:`dead_letter_event` to its step's ``audit`` update: the saver stores the letter in the
transaction of that step, so the letter exists exactly when the step does.

- :func:`letters`, :func:`get` read them (``accord dlq list | show``);
- :func:`retry` re-enters the thread from the letter's checkpoint and runs it on (the refused
  handoff is issued afresh), then marks the letter ``retried`` with how the run ended; a
  retry that fails again leaves a new letter, so nothing is lost;
- :func:`discard` gives a letter up (it stays, ``discarded``, until its thread is pruned).

Letters live in ``accord_dead_letters`` beside the checkpoints (SQLite, PostgreSQL) or in the
in-process journal (``memory://``), and are deleted with their thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accord.checkpoints.letters import (
    DeadLetter,
    LetterReason,
    LetterStatus,
    get_letter,
    list_letters,
    new_letter_id,
    resolve_letter,
)
from accord.errors import AccordError
from accord.records import AuditKind, audit_event
from accord.resilience.envelope import REDELIVER_KEY


class DeadLetterNotFound(AccordError):
    """No dead letter has this id."""


class LetterNotDead(AccordError):
    """The letter was already retried or discarded; it cannot be retried or discarded again."""


def dead_letter_event(*, node: str, error: BaseException | str, agent: str | None = None,
                      agent_version: str | None = None, task_id: str | None = None,
                      payload: Any = None, attempts: int | None = None,
                      reason: LetterReason = LetterReason.EXHAUSTED) -> dict[str, Any]:
    """The audit event that dead-letters a task; put it in the step's ``audit`` update.

    The saver stores the letter with the step (its checkpoint is the one the step ran from, so
    a retry runs the step again). ``attempts`` defaults to the times this task has been
    dead-lettered at this node, plus one.
    """
    cause = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    letter = {"id": new_letter_id(), "reason": LetterReason(reason).value, "error": cause,
              "payload": payload, "attempts": attempts, "agent_version": agent_version}
    return audit_event(AuditKind.DEAD_LETTERED, node=node, agent=agent, task_id=task_id,
                       letter=letter, reason=letter["reason"], error=cause)


def letters(saver: Any, *, status: LetterStatus | str | None = None,
            thread_id: str | None = None, limit: int | None = None) -> list[DeadLetter]:
    """The saver's dead letters, newest first."""
    wanted = LetterStatus(status) if status is not None else None
    return saver._read(lambda cur: list_letters(saver.dialect, cur, status=wanted,
                                                thread_id=thread_id, limit=limit))


def get(saver: Any, letter_id: str) -> DeadLetter:
    """One dead letter; raises :class:`DeadLetterNotFound`."""
    found = saver._read(lambda cur: get_letter(saver.dialect, cur, letter_id))
    if found is None:
        raise DeadLetterNotFound(f"unknown dead letter {letter_id!r}")
    return found


def _refuse(letter: DeadLetter, doing: str) -> LetterNotDead:
    when = letter.resolved_at.isoformat(timespec="seconds") if letter.resolved_at else "earlier"
    how = f" ({letter.resolution})" if letter.resolution else ""
    return LetterNotDead(f"dead letter {letter.id} was {letter.status.value} at {when}{how}; "
                         f"it cannot be {doing}")


def _resolve(saver: Any, letter: DeadLetter, status: LetterStatus, resolution: str | None,
             doing: str) -> DeadLetter:
    def body(cur: Any) -> bool:
        return resolve_letter(saver.dialect, cur, letter.id, status, resolution, saver.clock())

    if not saver._transaction(None, body):
        raise _refuse(get(saver, letter.id), doing)
    return get(saver, letter.id)


def discard(saver: Any, letter_id: str, reason: str | None = None) -> DeadLetter:
    """Give a dead letter up; raises :class:`LetterNotDead` when it is not ``dead``."""
    letter = get(saver, letter_id)
    if letter.status is not LetterStatus.DEAD:
        raise _refuse(letter, "discarded")
    return _resolve(saver, letter, LetterStatus.DISCARDED, reason or "discarded", "discarded")


@dataclass(frozen=True)
class RetryPlan:
    """How a retry re-enters a letter's thread."""

    letter: DeadLetter
    """The letter being retried."""
    configurable: dict[str, Any]
    """The run's ``configurable``: the thread, the checkpoint to re-enter from when the thread
    has moved past it, and the redelivery of a refused handoff."""


def plan_retry(saver: Any, letter_id: str) -> RetryPlan:
    """Check that the letter may be retried and say how; raises :class:`DeadLetterNotFound`
    or :class:`LetterNotDead`."""
    letter = get(saver, letter_id)
    if letter.status is not LetterStatus.DEAD:
        raise _refuse(letter, "retried")
    configurable: dict[str, Any] = {"thread_id": letter.thread_id}
    ids = [cid for cid, _ in saver.checkpoint_ids(letter.thread_id)]
    if letter.checkpoint_id and ids and letter.checkpoint_id != ids[0] and (
            letter.checkpoint_id in ids):
        configurable["checkpoint_id"] = letter.checkpoint_id  # the thread went on: re-enter
    if letter.node and letter.task_id:
        configurable[REDELIVER_KEY] = {"task_id": letter.task_id, "recipient": letter.node}
    return RetryPlan(letter, configurable)


def thread_epoch(saver: Any, thread_id: str) -> int:
    """The thread's fencing epoch (a run that claimed it raised it)."""
    record = saver.threads.get(thread_id)
    return record.epoch if record is not None else 0


def finish_retry(saver: Any, letter: DeadLetter, epoch_before: int) -> DeadLetter:
    """Mark a retried letter with how its thread stands now; a retry that never claimed the
    thread (busy, refused) leaves the letter ``dead``."""
    record = saver.threads.get(letter.thread_id)
    if record is None or record.epoch <= epoch_before:
        return letter
    return _resolve(saver, letter, LetterStatus.RETRIED, record.status.value, "retried")


async def retry(graph: Any, letter_id: str, config: dict[str, Any] | None = None) -> Any:
    """Re-run a dead letter's work on ``graph`` (compiled on accord's saver); returns what
    ``ainvoke`` returns. A retry that fails again raises, and leaves a new letter."""
    saver = graph.checkpointer
    plan = await saver._offload(plan_retry, saver, letter_id)
    run = {**(config or {}), "configurable": {**((config or {}).get("configurable") or {}),
                                              **plan.configurable}}
    before = await saver._offload(thread_epoch, saver, plan.letter.thread_id)
    try:
        return await graph.ainvoke(None, run)
    finally:
        await saver._offload(finish_retry, saver, plan.letter, before)


__all__ = [
    "DeadLetter",
    "DeadLetterNotFound",
    "LetterNotDead",
    "LetterReason",
    "LetterStatus",
    "RetryPlan",
    "dead_letter_event",
    "discard",
    "finish_retry",
    "get",
    "letters",
    "plan_retry",
    "retry",
    "thread_epoch",
]
