"""Metrics and log lines from the audit events a run commits.

accord's saver writes every audit event of a step in that step's transaction
(``AccordSaver._flush``); once it commits, :func:`events_committed` counts them (routing by
tier, breakers, human decisions, refused transitions) and times the transaction. One point sees
every event of every run on accord's saver, whatever started the run, and sees it once (a
step saved again after a crash records nothing twice). The lines are logged at DEBUG level
with the run's fields; the saver's threads have no log context of their own, so the fields come
from the run's handle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from accord.observability.metrics import BREAKER_STATES, metrics
from accord.records import AuditKind

logger = logging.getLogger("accord.audit")

_BREAKER = {
    AuditKind.BREAKER_OPENED.value: "opened",
    AuditKind.BREAKER_CLOSED.value: "closed",
    AuditKind.BREAKER_PROBE.value: "probe",
    AuditKind.BREAKER_SKIPPED.value: "skipped",
}


def _trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _before(event: dict[str, Any], since: datetime) -> bool:
    try:
        return datetime.fromisoformat(str(event.get("at"))) <= since
    except ValueError:
        return False


def events_committed(handle: Any, events: Iterable[tuple[Any, dict[str, Any]]],
                     seconds: float, backend: str) -> None:
    """A run's transaction committed ``events`` (``(checkpoint_id, event)`` pairs) in
    ``seconds``; never raises (observing must not fail a write that succeeded)."""
    try:
        m = metrics()
        m.checkpoint_write.labels(backend).observe(seconds)
        spec = handle.spec
        base = {"thread_id": spec.thread_id, "run_id": spec.run_id, "graph": spec.graph,
                "trace_id": _trace_id(spec.trace)}
        since = getattr(handle.previous, "updated_at", None)
        fresh: list[dict[str, Any]] = []
        for _, event in events:
            if since is not None and _before(event, since):
                continue  # an earlier run's event, still in the request's audit window
            fresh.append(event)
            kind = event.get("kind")
            if kind == AuditKind.ROUTE.value:
                m.routes.labels(str(event.get("tier")), str(event.get("target"))).inc()
            elif kind in _BREAKER:
                name = str(event.get("breaker"))
                m.breaker_events.labels(name, _BREAKER[kind]).inc()
                state = BREAKER_STATES.get(str(event.get("state")))
                if state is not None:
                    m.breaker_state.labels(name).set(state)
            elif kind == AuditKind.HUMAN_DECISION.value:
                m.human_decisions.labels(str(event.get("decision"))).inc()
            elif kind == AuditKind.ILLEGAL_TRANSITION.value:
                m.illegal_transitions.labels(str(event.get("node"))).inc()
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("audit %s", kind, extra={
                    **base, "event": "audit", "audit_kind": kind, "node": event.get("node"),
                    "agent": event.get("agent"), "task_id": event.get("task_id")})
        _react(handle, fresh)
    except Exception:  # noqa: BLE001
        logger.warning("could not observe committed audit events", exc_info=True)


def _react(handle: Any, events: list[dict[str, Any]]) -> None:
    """Alerts and notifications of committed events (each never raises)."""
    from accord.observability import alerts, notices

    if events:
        alerts.observe(handle, events)
        notices.committed(handle, events)


def run_ended(handle: Any, end: Any, events: Iterable[dict[str, Any]] = ()) -> None:
    """accord's saver recorded how a run ended (``RunEnd``), with the audit events written
    with that record (a failed run's ``run_failed`` and ``dead_lettered``); never raises."""
    try:
        from accord.observability import notices

        _react(handle, list(events))
        notices.ended(handle, end)
    except Exception:  # noqa: BLE001
        logger.warning("could not observe the end of a run", exc_info=True)


__all__ = ["events_committed", "run_ended"]
