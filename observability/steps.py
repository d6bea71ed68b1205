"""Spans, metrics and log lines for what happens inside a run: agent steps, routing decisions,
human decisions, guardrail trips and model retries.

Each is one call at the place it happens (the agent node, the router node, the approval node,
the engine's input check, the retry middleware), so the span nests where the work is and a
line logged inside carries the agent, node, task and attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from accord.observability.context import bound, current, log
from accord.observability.metrics import metrics
from accord.observability.traces import attrs, tracer

logger = logging.getLogger("accord.run")

T = TypeVar("T")


async def agent_step(node: str, spec: Any, task_id: str | None, calling: Awaitable[T]) -> T:
    """One agent step (``accord.agent_step``): ``calling`` awaited inside the span, timed per
    agent and version; a fallback or a failure the step recorded (its ``fallback`` and
    ``agent_failed`` audit events) is counted and marks the span."""
    started = time.perf_counter()
    outcome = "error"
    with bound(node=node, agent=spec.id, agent_version=spec.version, task_id=task_id), \
            tracer().start_as_current_span(
                f"accord.agent_step {spec.id}", record_exception=True,
                set_status_on_exception=True, attributes=attrs(**{
                    "accord.node": node, "accord.agent": spec.id,
                    "accord.agent.version": spec.version, "accord.agent.kind": spec.kind,
                    "accord.task_id": task_id})) as span:
        try:
            command = await calling
            outcome = _settled(span, spec, getattr(command, "update", None))
            return command
        finally:
            seconds = time.perf_counter() - started
            metrics().steps.labels(spec.id, spec.version, outcome).observe(seconds)
            log(logger, "agent step %s: %s", spec.id, outcome,
                event="agent_step", outcome=outcome, latency_ms=round(seconds * 1000, 3))


def _settled(span: trace.Span, spec: Any, update: Any) -> str:
    """The step's outcome from its update: ``ok``, ``fallback`` or ``failed``."""
    update = update if isinstance(update, Mapping) else {}
    audit = update.get("audit")
    events = [e for e in (audit if isinstance(audit, list) else getattr(audit, "value", []) or [])
              if isinstance(e, Mapping)]
    outcome = "ok"
    m = metrics()
    for event in events:
        kind = event.get("kind")
        if kind == "fallback":
            outcome = "fallback"
            error = str(event.get("error") or "")
            m.fallbacks.labels(spec.id, str(event.get("fallback") or "")).inc()
            m.agent_errors.labels(spec.id, spec.version, error.split(":", 1)[0]).inc()
            span.add_event("accord.fallback", attrs(**{"accord.fallback": event.get("fallback"),
                                                       "accord.error": error}))
        elif kind == "agent_failed":
            outcome = "failed"
            error = str(event.get("error") or "")
            if event.get("agent") == spec.id:
                m.agent_errors.labels(spec.id, spec.version, error.split(":", 1)[0]).inc()
            span.set_status(Status(StatusCode.ERROR, error))
    tasks = update.get("tasks")
    for task in (tasks.values() if isinstance(tasks, Mapping) else ()):
        if isinstance(task, Mapping) and task.get("status"):
            span.set_attribute("accord.task.status", str(task["status"]))
    return outcome


async def routed(node: str, deciding: Awaitable[T]) -> T:
    """The router's decision (``accord.route``): tier, target, confidence and reason on the span."""
    with bound(node=node), tracer().start_as_current_span(
            "accord.route", attributes={"accord.node": node}) as span:
        started = time.perf_counter()
        decision: Any = await deciding
        for key, value in attrs(tier=decision.tier, target=decision.target,
                                confidence=decision.confidence, reason=decision.reason,
                                attempts=decision.attempts or None).items():
            span.set_attribute(f"accord.route.{key}", value)
        log(logger, "routed to %s (%s)", decision.target, decision.tier,
            event="route", tier=decision.tier, target=decision.target,
            confidence=decision.confidence, latency_ms=round((time.perf_counter() - started)
                                                             * 1000, 3))
        return decision


def human_decision(node: str, event: Mapping[str, Any]) -> None:
    """A reviewer's answer at an approval node (``accord.human_decision``)."""
    with bound(node=node, task_id=event.get("task_id")), tracer().start_as_current_span(
            "accord.human_decision", attributes=attrs(**{
                "accord.node": node, "accord.decision": event.get("decision"),
                "accord.decision.by": event.get("by"), "accord.tool": event.get("tool"),
                "accord.decision.reason": event.get("reason")})):
        log(logger, "%s %s by %s", event.get("tool"), event.get("decision"), event.get("by"),
            event="human_decision", decision=event.get("decision"),
                                      by=event.get("by"), tool=event.get("tool"))


def guardrail_tripped(result: Any, *, thread_id: Any = None, graph: str | None = None) -> None:
    """An input guardrail refused a request (``accord.guardrail``); nothing was saved."""
    fields = result.as_dict() if hasattr(result, "as_dict") else {"guard": str(result)}
    guard = str(fields.get("guardrail") or type(result).__name__)
    metrics().guardrail_trips.labels(guard).inc()
    with bound(graph=graph, thread_id=str(thread_id) if thread_id is not None else None), \
            tracer().start_as_current_span("accord.guardrail", attributes=attrs(**{
                "accord.guard": guard, "accord.thread_id": thread_id,
                "accord.guard.reason": fields.get("reason")})) as span:
        span.set_status(Status(StatusCode.ERROR, f"{guard} tripped"))
        log(logger, "guardrail %s tripped", guard,
            event="guardrail", guard=guard, reason=fields.get("reason"))


def model_attempt(attempt: int) -> None:
    """A model call's attempt number, for the lines logged during it; a retry is counted."""
    if attempt <= 1:
        return
    fields = current()
    metrics().retries.labels(fields.get("agent", "")).inc()
    trace.get_current_span().add_event("accord.retry", {"accord.attempt": attempt})
    log(logger, "model call retried (attempt %d)", attempt, event="retry", attempt=attempt)


__all__ = ["agent_step", "guardrail_tripped", "human_decision", "model_attempt", "routed"]
