"""The handoff envelope: what a node hands an agent, versioned and checked when it arrives.

Every move into an agent node (from the router, from another agent, from any node of the
table) stores an envelope in the task's record (``tasks[task_id]["handoffs"][recipient]``), so
it is part of the checkpoint: sender, recipient, task, thread, created time, priority, TTL,
schema version and the payload (the task's query and the context keys the recipient reads).

The recipient reads it back before anything runs (:func:`read_envelope`):

- a value that is not an envelope (edited by hand, damaged) -> :class:`HandoffCorrupt`;
- a schema version accord does not know -> :class:`UnknownHandoffVersion`; the previous
  version (``1``: query and context beside the header, no priority) is upgraded and accepted;
- an envelope older than its TTL -> :class:`HandoffExpired`;
- a payload the recipient's ``AgentSpec.input_schema`` refuses -> :class:`HandoffInvalid`.

Each is a :class:`HandoffRejected`: the agent does not run, the run ends ``failed`` with the
cause, and the engine stores a dead letter for it (``accord.resilience.deadletters``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from accord.checkpoints.letters import LetterReason
from accord.errors import AccordError

SCHEMA_VERSION = 2
"""The envelope's current schema version."""

HANDOFFS_FIELD = "handoffs"
"""The task record's field holding its envelopes, by recipient node."""

REDELIVER_KEY = "accord_redeliver"
"""Config key (``configurable``) of a redelivery: ``{"task_id": ..., "recipient": ...}``."""

Clock = Callable[[], datetime]
"""Aware UTC time, injectable."""


def utc_clock() -> datetime:
    return datetime.now(UTC)


class HandoffPayload(BaseModel):
    """What the recipient works on: the task and the context keys it declares it reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str
    """The request, in the user's words."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Values of the shared-context keys the recipient reads."""


class HandoffEnvelope(BaseModel):
    """A handoff as stored and as the agent receives it (``accord.agents.Handoff``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    schema_version: Literal[2] = SCHEMA_VERSION
    """The envelope's schema version (older stored versions are upgraded on read)."""
    sender: str
    """The node that handed the task over."""
    recipient: str
    """The agent node it is for."""
    task_id: str
    """The task."""
    thread_id: str = ""
    """The thread the task belongs to (for idempotency keys)."""
    created_at: AwareDatetime
    """When the sender handed it over."""
    priority: int = 0
    """Higher goes first where work queues."""
    ttl: float | None = Field(None, gt=0)
    """Seconds after ``created_at`` the handoff may still be run (None: no expiry)."""
    payload: HandoffPayload
    """The task and the context keys the recipient reads."""
    successors: tuple[str, ...] = Field((), exclude=True)
    """The nodes the agent may hand the task to (``AgentResult(handoff_to=...)``); not stored."""
    ledger: Any = Field(None, exclude=True, repr=False)
    """The run's tool ledger (``accord.agents.ledger.Ledger``) on accord's saver; not stored."""
    reviews: tuple[Any, ...] = Field((), exclude=True)
    """Held actions of this task a human has decided on, oldest first
    (``accord.agents.ReviewedAction``; see :meth:`review`); not stored."""

    @property
    def query(self) -> str:
        return self.payload.query

    @property
    def context(self) -> dict[str, Any]:
        return self.payload.context

    @property
    def expires_at(self) -> datetime | None:
        return None if self.ttl is None else self.created_at + timedelta(seconds=self.ttl)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now > self.expires_at

    def review(self, tool: str | None = None, *, key: str | None = None) -> Any:
        """The latest decision on a held action of this task: by its idempotency ``key``, or the
        latest one on ``tool`` (any tool when neither is given); ``None`` when there is none."""
        for review in reversed(self.reviews):
            if (key is None or review.key == key) and (tool is None or review.tool == tool):
                return review
        return None

    def stored(self) -> dict[str, Any]:
        """The JSON value kept in the checkpoint."""
        return self.model_dump(mode="json")

    def render(self) -> str:
        """The handoff as the text an LLM agent sees."""
        lines = [f"Task {self.task_id}: {self.query}"]
        for key, value in sorted(self.context.items()):
            lines.append(f"context.{key}: {value}")
        return "\n".join(lines)


class HandoffRejected(AccordError):
    """A handoff the recipient does not run; the engine dead-letters it."""

    reason: LetterReason = LetterReason.CORRUPT

    def __init__(self, message: str, *, recipient: str, task_id: str | None, stored: Any,
                 agent: str | None = None, agent_version: str | None = None) -> None:
        super().__init__(message)
        self.recipient = recipient
        self.task_id = task_id
        self.stored = stored
        self.agent = agent
        self.agent_version = agent_version

    @property
    def dead_letter(self) -> dict[str, Any]:
        """What the dead letter records about this handoff."""
        return {"reason": self.reason, "node": self.recipient, "task_id": self.task_id,
                "agent": self.agent, "agent_version": self.agent_version,
                "payload": self.stored}


class HandoffCorrupt(HandoffRejected):
    """The stored handoff is not a readable envelope (edited by hand, damaged)."""

    reason = LetterReason.CORRUPT


class UnknownHandoffVersion(HandoffRejected):
    """The stored handoff has a schema version accord does not know."""

    reason = LetterReason.UNKNOWN_VERSION


class HandoffExpired(HandoffRejected):
    """The handoff is older than its TTL; it was not run."""

    reason = LetterReason.EXPIRED


class HandoffInvalid(HandoffRejected):
    """The payload does not satisfy the recipient's input schema."""

    reason = LetterReason.INVALID


def _from_v1(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1: ``query`` and ``context`` beside the header, no priority."""
    data = {k: v for k, v in raw.items() if k not in ("query", "context")}
    data["schema_version"] = SCHEMA_VERSION
    data["payload"] = {"query": raw.get("query"), "context": raw.get("context") or {}}
    return data


UPGRADES: dict[int, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    1: _from_v1,
    SCHEMA_VERSION: dict,
}
"""How each accepted schema version becomes the current one."""

_RUNTIME = ("successors", "ledger", "reviews")


def read_envelope(raw: Any, *, recipient: str, task_id: str) -> HandoffEnvelope:
    """The stored handoff for ``recipient``'s task ``task_id``, checked and upgraded."""

    def rejected(kind: type[HandoffRejected], why: str) -> HandoffRejected:
        return kind(f"handoff to {recipient} for task {task_id} {why}; not run",
                    recipient=recipient, task_id=task_id, stored=raw)

    if not isinstance(raw, Mapping):
        raise rejected(HandoffCorrupt, f"is corrupt: a {type(raw).__name__}, not an envelope")
    version = raw.get("schema_version")
    if version is None:
        raise rejected(HandoffCorrupt, "is corrupt: it has no schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version not in UPGRADES:
        known = ", ".join(str(v) for v in sorted(UPGRADES))
        raise rejected(UnknownHandoffVersion,
                       f"has unknown schema version {version!r} (accord reads {known})")
    if any(k in raw for k in _RUNTIME):
        raise rejected(HandoffCorrupt, "is corrupt: it holds run-time fields")
    try:
        envelope = HandoffEnvelope.model_validate(UPGRADES[version](raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "envelope"
        raise rejected(HandoffCorrupt, f"is corrupt: {where}: {first.get('msg')}") from None
    if envelope.recipient != recipient or envelope.task_id != task_id:
        raise rejected(HandoffCorrupt, f"is corrupt: it is addressed to {envelope.recipient} "
                                       f"for task {envelope.task_id}")
    return envelope


def check_envelope(envelope: HandoffEnvelope, spec: Any, now: datetime) -> None:
    """Refuse an expired envelope, or a payload ``spec.input_schema`` does not accept."""
    info = {"recipient": envelope.recipient, "task_id": envelope.task_id,
            "stored": envelope.stored(), "agent": spec.id, "agent_version": spec.version}
    if envelope.expired(now):
        assert envelope.expires_at is not None
        raise HandoffExpired(
            f"handoff to {envelope.recipient} for task {envelope.task_id} expired at "
            f"{envelope.expires_at.isoformat(timespec='seconds')} (ttl {envelope.ttl:g}s); "
            "not run", **info)
    if spec.input_schema is not None:
        try:
            spec.input_schema.model_validate({"query": envelope.query, **envelope.context})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
            raise HandoffInvalid(
                f"handoff to {envelope.recipient} for task {envelope.task_id} does not satisfy "
                f"{spec.input_schema.__name__}: {where}: {first.get('msg')}; not run",
                **info) from None


__all__ = [
    "HANDOFFS_FIELD",
    "REDELIVER_KEY",
    "SCHEMA_VERSION",
    "UPGRADES",
    "Clock",
    "HandoffCorrupt",
    "HandoffEnvelope",
    "HandoffExpired",
    "HandoffInvalid",
    "HandoffPayload",
    "HandoffRejected",
    "UnknownHandoffVersion",
    "check_envelope",
    "read_envelope",
    "utc_clock",
]
