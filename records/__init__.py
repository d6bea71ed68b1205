"""accord.records: the typed records every room shares.

Statuses and audit events are enums and typed models, never strings matched by hand. The
state keeps them as plain JSON values (portable across savers, the dev server, Studio and the
SDK); :class:`AuditEvent` reads one back.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string (what state and audit records store)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class TaskStatus(StrEnum):
    """Where one task (one request) stands."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Completed or failed: nothing more will happen to the task."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


class ThreadStatus(StrEnum):
    """Where a thread stands, as the thread index records it."""

    RUNNING = "running"
    INTERRUPTED = "interrupted"
    DONE = "done"
    FAILED = "failed"


class AuditKind(StrEnum):
    """What an audit event records."""

    ROUTE = "route"
    """The router's decision (tier, target, reason, confidence)."""
    TRANSITION = "transition"
    """A checked move from one node to the next."""
    TOOL_CALL = "tool_call"
    """A tool an agent called, with its arguments and result."""
    HUMAN_DECISION = "human_decision"
    """A reviewer's answer at an approval node."""
    FALLBACK = "fallback"
    """A hop of an agent's fallback chain failed (with its cause) and the next one took over."""
    AGENT_FAILED = "agent_failed"
    """An agent and every hop of its fallback chain failed; the task failed with the cause."""
    ATTEMPT_FAILED = "attempt_failed"
    """One call of an agent or of its model failed (``retried`` says whether another followed)."""
    ILLEGAL_TRANSITION = "illegal_transition"
    """A node proposed a move the transition table does not declare."""
    WRITE_REJECTED = "write_rejected"
    """An agent tried to write a shared-context key it does not own."""
    GUARDRAIL = "guardrail"
    """A guardrail tripped."""
    ESCALATED = "escalated"
    """A request was handed to the human team."""
    TASK_FINISHED = "task_finished"
    """A task completed or failed; the event carries its final record."""
    INPUT_REFUSED = "input_refused"
    """The engine refused a request before anything was saved."""
    RUN_FAILED = "run_failed"
    """A run stopped on an error; the thread is ``failed`` with this cause."""
    DEAD_LETTERED = "dead_lettered"
    """Work accord could not finish was stored as a dead letter (``letter`` is its id)."""
    BREAKER_OPENED = "breaker_opened"
    """A circuit breaker opened after repeated failures (or a failed probe)."""
    BREAKER_SKIPPED = "breaker_skipped"
    """A call was not made because its breaker is open; the fallback answered."""
    BREAKER_PROBE = "breaker_probe"
    """A half-open breaker let one probe call through."""
    BREAKER_CLOSED = "breaker_closed"
    """A probe succeeded; the breaker closed."""
    ACTION_FAILED = "action_failed"
    """An approved action failed; the task and the run are ``failed`` with its cause."""
    AGENT_RUN = "agent_run"
    """An agent node ran: the agent's version, how it was chosen, the outcome, the tokens."""
    PERMISSION_DENIED = "permission_denied"
    """An agent called an undeclared tool, or a tool touched another user's data; not applied."""
    RATE_LIMITED = "rate_limited"
    """A call found no room under a rate limit within its bounded wait; it was not made."""
    BUDGET_EXHAUSTED = "budget_exhausted"
    """A cost budget could not pay for a call; the agent fell back, or the task stopped."""
    BUDGET_DOWNGRADE = "budget_downgrade"
    """A budget could not pay for the agent's model; the call went to a smaller tier."""
    CACHE_HIT = "cache_hit"
    """An LLM agent's model call was answered from the request cache; no model was called."""
    AGENT_FLAGGED = "agent_flagged"
    """An agent crossed an alert threshold (``accord.observability.alerts``)."""


class AuditEvent(BaseModel):
    """One audit-trail record, as stored and as shown."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    """Unique id: a step re-saved after a crash does not record its events twice."""
    kind: AuditKind
    """What happened."""
    at: str = Field(default_factory=utcnow)
    """When (UTC, ISO-8601)."""
    node: str | None = None
    """The node it happened in, if any."""
    agent: str | None = None
    """The agent involved, if any."""
    task_id: str | None = None
    """The task it belongs to, if known."""

    def details(self) -> dict[str, Any]:
        """The event's own fields (everything but id, kind and time)."""
        return {k: v for k, v in self.model_dump().items() if k not in ("id", "kind", "at")}


def audit_event(kind: AuditKind | str, **fields: Any) -> dict[str, Any]:
    """One audit record as the JSON value nodes write to the state's ``audit`` key."""
    return {"id": uuid.uuid4().hex, "kind": AuditKind(kind).value, "at": utcnow(), **fields}


__all__ = [
    "AuditEvent",
    "AuditKind",
    "TaskStatus",
    "ThreadStatus",
    "audit_event",
    "utcnow",
]
