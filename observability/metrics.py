"""Prometheus metrics of accord's runs, agents, models, tools, breakers and saver.

The metrics live in ``prometheus_client``'s default registry, so whatever already serves it
shows them: the ``/metrics`` of ``langgraph dev`` and the Agent Server (which serve that
registry), ``accord metrics-serve``, or an application's own exporter. They are created on first
use, once per process. What the database knows (the approvals waiting now and how long they
have waited) comes from the thread index (:class:`PendingApprovals`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""Seconds: an agent step or a run, from a rule lookup to a slow model."""
WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
"""Seconds: one transaction of a run's writes, or a wait for a thread's lock."""

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
"""``accord_breaker_state``'s values."""


@dataclass(frozen=True)
class Metrics:
    """accord's metric families (``accord_*``)."""

    runs: Counter
    """Runs ended, by graph, kind and status (done, interrupted, failed, refused, cancelled)."""
    run_seconds: Histogram
    """Run duration, by graph and kind."""
    steps: Histogram
    """Agent step duration, by agent, version and outcome."""
    agent_errors: Counter
    """Agent failures (the fallback answered or the task went to the error path), by agent,
    version and error type."""
    retries: Counter
    """Model calls retried, by agent."""
    fallbacks: Counter
    """Fallbacks taken, by agent and fallback."""
    breaker_state: Gauge
    """A circuit breaker's last known state: 0 closed, 1 half open, 2 open."""
    breaker_events: Counter
    """What breakers did: opened, closed, probe, skipped."""
    routes: Counter
    """Routing decisions, by tier and target."""
    tokens: Counter
    """Model tokens, by agent, model and direction (input, output)."""
    model_calls: Counter
    """Model calls, by agent, model and outcome."""
    tool_calls: Counter
    """Tool calls, by agent, tool and outcome."""
    lock_wait: Histogram
    """Time a run waited to claim its thread, by graph."""
    checkpoint_write: Histogram
    """Time one transaction of a run's writes took, by backend."""
    guardrail_trips: Counter
    """Guardrails that tripped, by guard."""
    human_decisions: Counter
    """Reviewers' answers, by decision."""
    illegal_transitions: Counter
    """Moves the transition table refused, by node."""


def _families(registry: CollectorRegistry) -> Metrics:
    def counter(name: str, doc: str, labels: Iterable[str]) -> Counter:
        return Counter(f"accord_{name}", doc, list(labels), registry=registry)

    def histogram(name: str, doc: str, labels: Iterable[str], buckets: tuple) -> Histogram:
        return Histogram(f"accord_{name}", doc, list(labels), buckets=buckets, registry=registry)

    return Metrics(
        runs=counter("runs", "Runs ended", ("graph", "kind", "status")),
        run_seconds=histogram("run_duration_seconds", "Run duration", ("graph", "kind"),
                              STEP_BUCKETS),
        steps=histogram("agent_step_duration_seconds", "Agent step duration",
                        ("agent", "version", "outcome"), STEP_BUCKETS),
        agent_errors=counter("agent_errors", "Agent failures", ("agent", "version", "error")),
        retries=counter("model_retries", "Model calls retried", ("agent",)),
        fallbacks=counter("fallbacks", "Fallbacks taken", ("agent", "fallback")),
        breaker_state=Gauge("accord_breaker_state",
                            "Circuit breaker state (0 closed, 1 half open, 2 open)",
                            ["breaker"], registry=registry),
        breaker_events=counter("breaker_events", "Circuit breaker events", ("breaker", "event")),
        routes=counter("routes", "Routing decisions", ("tier", "target")),
        tokens=counter("tokens", "Model tokens", ("agent", "model", "direction")),
        model_calls=counter("model_calls", "Model calls", ("agent", "model", "outcome")),
        tool_calls=counter("tool_calls", "Tool calls", ("agent", "tool", "outcome")),
        lock_wait=histogram("thread_lock_wait_seconds", "Wait to claim a thread", ("graph",),
                            WRITE_BUCKETS),
        checkpoint_write=histogram("checkpoint_write_seconds",
                                   "One transaction of a run's writes", ("backend",),
                                   WRITE_BUCKETS),
        guardrail_trips=counter("guardrail_trips", "Guardrails tripped", ("guard",)),
        human_decisions=counter("human_decisions", "Reviewers' answers", ("decision",)),
        illegal_transitions=counter("illegal_transitions", "Refused transitions", ("node",)),
    )


@cache
def metrics() -> Metrics:
    """The process's metric families, in the default registry (created on first use)."""
    return _families(REGISTRY)


class PendingApprovals(Collector):
    """``accord_pending_approvals`` and ``accord_pending_approval_age_seconds``.

    A snapshot of the thread index's interrupted threads, never read at scrape time (a scrape
    does no I/O): the server loads it from the index when it starts and again every few
    seconds (:meth:`replace`, picking up what other processes did), and every run of this
    process that ends updates it at once (:func:`note_run_end`).
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self._waiting: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def replace(self, records: Iterable[Any]) -> None:
        """The interrupted threads as the index lists them (``ThreadRecord``s)."""
        waiting = {r.thread_id: (r.graph or "", r.updated_at) for r in records}
        with self._lock:
            self._waiting = waiting

    def note(self, thread_id: str, graph: str, status: str) -> None:
        """A run of this process left ``thread_id`` with ``status``."""
        with self._lock:
            if status == "interrupted":
                self._waiting[thread_id] = (graph, self.clock())
            else:
                self._waiting.pop(thread_id, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            waiting = list(self._waiting.values())
        now = self.clock()
        count = GaugeMetricFamily("accord_pending_approvals",
                                  "Threads waiting for a human decision", labels=["graph"])
        age = GaugeMetricFamily("accord_pending_approval_age_seconds",
                                "How long the oldest waiting thread has waited", labels=["graph"])
        by_graph: dict[str, list[float]] = {}
        for graph, since in waiting:
            by_graph.setdefault(graph, []).append(max(0.0, (now - since).total_seconds()))
        if not by_graph:
            count.add_metric([""], 0)
            age.add_metric([""], 0)
        for graph, ages in sorted(by_graph.items()):
            count.add_metric([graph], len(ages))
            age.add_metric([graph], max(ages))
        yield count
        yield age

    def describe(self) -> list:
        return []


_TRACKERS: set[PendingApprovals] = set()
"""The pending-approval snapshots this process serves (one per running app)."""


def track(collector: PendingApprovals) -> None:
    """Register ``collector`` with the default registry; this process's runs update it."""
    REGISTRY.register(collector)
    _TRACKERS.add(collector)


def untrack(collector: PendingApprovals) -> None:
    _TRACKERS.discard(collector)
    REGISTRY.unregister(collector)


def note_run_end(thread_id: str | None, graph: str, status: str) -> None:
    """A run ended: the threads waiting for a decision change with it."""
    if thread_id is None or status in ("refused", "cancelled"):
        return
    for collector in list(_TRACKERS):
        collector.note(str(thread_id), graph, status)


__all__ = ["BREAKER_STATES", "Metrics", "PendingApprovals", "metrics", "note_run_end", "track",
           "untrack"]
