"""The outbox (``accord_outbox``): accord's events for other systems, written with the step.

Every step's audit events are written in that step's transaction (``AccordSaver._flush``); the
ones other systems care about become outbox rows in the same transaction, and so does the end
of each run. A relay (``accord.workers.relay``) publishes the rows to a broker and marks them;
a row is published at least once, and its ``event_id`` is stable (a step saved again after a
crash adds no row), so consumers deduplicate on it.

The events (``accord.workers.events.Event``, schema ``accord.event`` version 1):

==========================  =====================================================================
type                        when
==========================  =====================================================================
``task.started``            the router gave the task to an agent (``target``, ``tier``)
``task.completed``          a task's record ended ``completed``
``task.failed``             a task failed (an agent and its fallbacks, an approved action)
``task.dead_lettered``      work was stored as a dead letter (``letter``, ``reason``)
``approval.requested``      a run stopped for a person's decision (the HITL request)
``approval.decided``        a reviewer answered (``decision``, ``by``)
``thread.completed``        a run ended the thread ``done``
``thread.failed``           a run ended the thread ``failed`` (``error``)
==========================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from accord.records import AuditKind, ThreadStatus

SCHEMA = "accord.event"
"""The events' schema name."""
SCHEMA_VERSION = 1
"""The events' schema version (``accord/workers/schemas/event.v1.json``)."""

SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS accord_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, thread_id TEXT NOT NULL,"
    " body TEXT NOT NULL, created_at TEXT NOT NULL, leased_until TEXT, published_at TEXT)",
    "CREATE INDEX IF NOT EXISTS accord_outbox_unpublished ON accord_outbox (seq)"
    " WHERE published_at IS NULL",
)
POSTGRES_DDL = (
    "CREATE TABLE IF NOT EXISTS accord_outbox (seq BIGSERIAL PRIMARY KEY,"
    " event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, thread_id TEXT NOT NULL,"
    " body JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL, leased_until TIMESTAMPTZ,"
    " published_at TIMESTAMPTZ)",
    "CREATE INDEX IF NOT EXISTS accord_outbox_unpublished ON accord_outbox (seq)"
    " WHERE published_at IS NULL",
)

_FIELDS = {
    AuditKind.ROUTE: ("target", "tier", "confidence"),
    AuditKind.HUMAN_DECISION: ("decision", "by", "tool", "reason"),
    AuditKind.DEAD_LETTERED: ("letter", "reason", "error"),
    AuditKind.AGENT_FAILED: ("error", "cause"),
    AuditKind.ACTION_FAILED: ("error", "tool"),
}


def _type_of(event: dict[str, Any]) -> str | None:
    kind = event.get("kind")
    if kind == AuditKind.ROUTE:  # a route to the end starts nothing
        return None if str(event.get("target")) in ("END", "__end__") else "task.started"
    if kind == AuditKind.TASK_FINISHED:
        status = (event.get("task") or {}).get("status")
        return {"completed": "task.completed", "failed": "task.failed"}.get(str(status))
    if kind in (AuditKind.AGENT_FAILED, AuditKind.ACTION_FAILED):
        return "task.failed"
    if kind == AuditKind.DEAD_LETTERED:
        return "task.dead_lettered"
    if kind == AuditKind.HUMAN_DECISION:
        return "approval.decided"
    return None


def _envelope(event_id: str, kind: str, thread_id: str, handle: Any, at: str,
              **fields: Any) -> dict[str, Any]:
    spec = getattr(handle, "spec", None)
    return {
        "schema": SCHEMA, "version": SCHEMA_VERSION, "event_id": event_id, "type": kind,
        "thread_id": thread_id, "run_id": getattr(spec, "run_id", None),
        "graph": getattr(spec, "graph", None), "occurred_at": at,
        **{k: v for k, v in fields.items()},
    }


def _small(value: Any) -> Any:
    """A field value as the event carries it (long text cut, so an event stays small)."""
    if isinstance(value, str) and len(value) > 2000:
        return value[:2000] + "…"
    return value


def step_events(handle: Any, thread_id: str,
                events: Iterable[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The outbox events of a step's audit events."""
    out = []
    for _, event in events:
        kind = _type_of(event)
        if kind is None:
            continue
        data = {k: _small(event.get(k)) for k in _FIELDS.get(AuditKind(event["kind"]), ())
                if event.get(k) is not None}
        if event.get("kind") == AuditKind.DEAD_LETTERED and isinstance(data.get("letter"), dict):
            data["letter"] = data["letter"].get("id")
        out.append(_envelope(str(event["id"]), kind, thread_id, handle,
                             str(event.get("at") or _now()), agent=event.get("agent"),
                             node=event.get("node"), task_id=event.get("task_id"), data=data))
    return out


def end_event(handle: Any, status: ThreadStatus, pending: Any,
              error: str | None) -> dict[str, Any] | None:
    """The outbox event of a run's end (None for a run that leaves the thread running)."""
    kind = {ThreadStatus.INTERRUPTED: "approval.requested", ThreadStatus.DONE: "thread.completed",
            ThreadStatus.FAILED: "thread.failed"}.get(status)
    if kind is None:
        return None
    data: dict[str, Any] = {}
    if status is ThreadStatus.INTERRUPTED and isinstance(pending, dict):
        data = {k: pending[k] for k in ("type", "action_requests", "review_configs", "node",
                                         "agent") if k in pending}
    if error:
        data["error"] = _small(error)
    thread_id = handle.thread_id
    return _envelope(f"{thread_id}:{handle.epoch}:{kind}", kind, thread_id, handle, _now(),
                     agent=(pending or {}).get("agent") if isinstance(pending, dict) else None,
                     node=None, task_id=None, data=data)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def insert_outbox(dialect: Any, cur: Any, events: list[dict[str, Any]]) -> None:
    """Write ``events`` into the outbox inside the caller's transaction (an event already
    there is left alone)."""
    if not events:
        return
    now = dialect.ts_in(datetime.now(UTC))
    cur.executemany(dialect.sql(
        "INSERT INTO accord_outbox (event_id, type, thread_id, body, created_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"),
        [(e["event_id"], e["type"], e["thread_id"], dialect.json_in(e), now) for e in events])


__all__ = ["POSTGRES_DDL", "SCHEMA", "SCHEMA_VERSION", "SQLITE_DDL", "end_event",
           "insert_outbox", "step_events"]
