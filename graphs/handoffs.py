"""Handoff envelopes in a workflow: issued on every move into an agent node, read by the agent.

:class:`HandoffIssuer` is called by the run-time transition check (``Transitions.command``) for
each target that is an agent node: the envelope goes into the task's record in the same state
update as the move, so it is saved with the sender's step. The agent node reads it back
(:meth:`HandoffIssuer.receive`), checks it and runs on it, or refuses it (``HandoffRejected``).

A retry of a dead letter (``accord.resilience.deadletters.retry``) asks for redelivery: the run's
config names the task and the recipient, and the envelope is issued afresh from the thread's
state instead of read from the stored one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph.config import get_config

from accord.graphs.state import ContextConflict, merge_context
from accord.resilience.envelope import (
    HANDOFFS_FIELD,
    REDELIVER_KEY,
    Clock,
    HandoffEnvelope,
    HandoffPayload,
    HandoffRejected,
    check_envelope,
    read_envelope,
    utc_clock,
)


def _configurable() -> Mapping[str, Any]:
    try:
        return get_config().get("configurable") or {}
    except RuntimeError:  # not inside a graph run
        return {}


def _context_after(state: Mapping[str, Any], update: Mapping[str, Any]) -> Mapping[str, Any]:
    """The shared context as the sender's step leaves it."""
    writes = update.get("context")
    if not isinstance(writes, Mapping) or not writes:
        return state.get("context") or {}
    try:
        return merge_context(state.get("context"), dict(writes))
    except ContextConflict:  # the reducer will refuse the step itself
        return state.get("context") or {}


@dataclass(frozen=True)
class HandoffIssuer:
    """Issues and receives the envelopes of a workflow's agent nodes."""

    reads: Mapping[str, tuple[str, ...]]
    """Agent node -> the shared-context keys it reads."""
    ttl: float | None = None
    """Seconds an envelope may wait before it is run (None: no expiry)."""
    clock: Clock = field(default=utc_clock, compare=False)
    """What 'now' is for created times and expiry (tests replace it)."""

    def envelope(self, sender: str, recipient: str, task_id: str,
                 state: Mapping[str, Any], update: Mapping[str, Any] | None = None
                 ) -> HandoffEnvelope:
        update = update or {}
        record = {**((state.get("tasks") or {}).get(task_id) or {}),
                  **(((update.get("tasks") or {}).get(task_id)) or {})}
        context = _context_after(state, update)
        values = {k: context[k]["value"] for k in self.reads.get(recipient, ()) if k in context}
        return HandoffEnvelope(
            sender=sender, recipient=recipient, task_id=task_id,
            thread_id=str(_configurable().get("thread_id", "")), created_at=self.clock(),
            priority=int(record.get("priority") or 0), ttl=self.ttl,
            payload=HandoffPayload(query=str(record.get("query") or ""), context=values))

    def attach(self, sender: str, targets: Sequence[str], state: Mapping[str, Any],
               update: dict[str, Any]) -> None:
        """Put an envelope for each agent among ``targets`` into ``update`` (the task's record)."""
        recipients = [t for t in targets if t in self.reads]
        task_id = update.get("active_task") or state.get("active_task")
        if not recipients or not task_id:
            return
        tasks = dict(update.get("tasks") or {})
        change = dict(tasks.get(task_id) or {})
        change[HANDOFFS_FIELD] = {r: self.envelope(sender, r, task_id, state, update).stored()
                                  for r in recipients}
        tasks[task_id] = change
        update["tasks"] = tasks

    def receive(self, recipient: str, spec: Any, state: Mapping[str, Any], *,
                successors: tuple[str, ...] = (), ledger: Any = None,
                reviews: tuple[Any, ...] = ()) -> HandoffEnvelope:
        """The checked envelope for ``recipient``'s active task; raises ``HandoffRejected``."""
        task_id = state.get("active_task") or ""
        task = (state.get("tasks") or {}).get(task_id) or {}
        stored = (task.get(HANDOFFS_FIELD) or {}).get(recipient)
        redeliver = _configurable().get(REDELIVER_KEY) or {}
        fresh = stored is None or (redeliver.get("task_id") == task_id
                                   and redeliver.get("recipient") == recipient)
        try:
            if fresh:  # redelivery, or a thread saved before envelopes: issued now
                sender = stored.get("sender") if isinstance(stored, Mapping) else None
                envelope = self.envelope(str(sender or task.get("agent") or recipient),
                                         recipient, task_id, state)
            else:
                envelope = read_envelope(stored, recipient=recipient, task_id=task_id)
            check_envelope(envelope, spec, self.clock())
        except HandoffRejected as rejected:
            rejected.agent, rejected.agent_version = spec.id, spec.version
            raise
        return envelope.model_copy(update={"successors": successors, "ledger": ledger,
                                           "reviews": reviews})


__all__ = ["REDELIVER_KEY", "HandoffIssuer"]
