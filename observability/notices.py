"""What accord tells people, and when: the notices of a run's events.

Called from the two points that see every run once, whatever started it (Python, the CLI,
``langgraph dev``, a worker): :func:`committed` with the audit events a step's transaction
committed (``accord.observability.events``), and :func:`ended` when accord's saver recorded how
a run left its thread (``AccordSaver.end_run``). A run that stops for a person (an approval,
an escalation) and a dead letter each become one :class:`~accord.observability.notify.Notice`,
queued for the background sender.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from accord.observability.notify import Notice, NoticeKind, notify
from accord.records import AuditKind, ThreadStatus

MAX_ARGS = 200
"""Characters of an action's arguments shown in a notice."""


def _args(args: Any) -> str:
    text = json.dumps(args, default=str, sort_keys=True)
    return text if len(text) <= MAX_ARGS else text[:MAX_ARGS] + "…"


def _spec_fields(handle: Any) -> list[tuple[str, str]]:
    spec = handle.spec
    return [("graph", str(spec.graph or "")), ("thread", str(spec.thread_id))]


def approval_notice(thread_id: str, graph: str | None, pending: Any) -> Notice:
    """The notice of a run that waits for a person's decision on ``pending``."""
    value = pending if isinstance(pending, dict) else {}
    actions = value.get("action_requests") or []
    lines = [f"{a.get('description') or a.get('name', '?')}: {a.get('name', '?')} "
             f"{_args(a.get('args', {}))}" for a in actions if isinstance(a, dict)]
    agent = value.get("agent")
    if lines:
        title = f"Approval needed: {', '.join(a.get('name', '?') for a in actions)}"
        text = "\n".join(lines)
    else:
        title = "A person is needed"
        text = str(value.get("reason") or value.get("query") or "the run waits for a decision")
    fields = [("graph", str(graph or "")), ("thread", thread_id)]
    if agent:
        fields.append(("agent", str(agent)))
    if value.get("task_id"):
        fields.append(("task", str(value["task_id"])))
    return Notice(NoticeKind.APPROVAL_WAIT, title, text, thread_id=thread_id,
                  fields=tuple(fields))


def letter_notice(handle: Any, event: dict[str, Any]) -> Notice:
    """The notice of a ``dead_lettered`` audit event."""
    letter = event.get("letter")
    if isinstance(letter, dict):
        letter_id, error = letter.get("id"), event.get("error") or letter.get("error")
    else:
        letter_id, error = letter, event.get("error")
    where = event.get("agent") or event.get("node") or "a node"
    fields = _spec_fields(handle)
    for key, value in (("agent", event.get("agent")), ("node", event.get("node")),
                       ("task", event.get("task_id")), ("letter", letter_id),
                       ("reason", event.get("reason"))):
        if value:
            fields.append((key, str(value)))
    return Notice(NoticeKind.DEAD_LETTER, f"Dead letter: {where} could not finish",
                  str(error or "the work was stored as a dead letter"),
                  thread_id=handle.spec.thread_id, fields=tuple(fields))


def committed(handle: Any, events: Iterable[dict[str, Any]]) -> None:
    """A step's audit events committed: its dead letters are told."""
    for event in events:
        if event.get("kind") == AuditKind.DEAD_LETTERED:
            notify(letter_notice(handle, event))


def ended(handle: Any, end: Any) -> None:
    """A run ended as ``end`` (``RunEnd``): a wait for a person it started is told."""
    from accord.checkpoints.runs import RunKind

    if end is None or end.status is not ThreadStatus.INTERRUPTED or not handle.interrupts:
        return  # only the run that raised the interrupt tells it (not one that found it)
    if handle.spec.kind is RunKind.UPDATE:
        return  # an edit of a waiting thread's state is not a new wait
    notify(approval_notice(handle.spec.thread_id, handle.spec.graph, end.pending))


__all__ = ["approval_notice", "committed", "ended", "letter_notice"]
