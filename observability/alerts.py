"""Rogue-agent alerts: an agent that fails, trips guards, gets rejected or spends too much.

Per agent, over a sliding window of the audit events its runs commit (fed from
``accord.observability.events``, so every entry point counts), an :class:`AgentMonitor` keeps:

- the error rate: ``agent_run`` events whose outcome is ``failed`` or ``fallback``, of all its
  ``agent_run`` events (calls skipped because the agent is switched off do not count);
- guardrail trips: ``guardrail``, ``permission_denied``, ``write_rejected``, ``rate_limited``
  and ``budget_exhausted`` events of the agent;
- the rejection rate: reviewers' ``reject`` decisions of all decisions on its actions;
- tokens (``agent_run``'s tokens) over the window, and USD spent today (``accord_usage``).

Crossing a threshold flags the agent: a WARNING line (``event=agent_flagged``), an
``agent_flagged`` audit event in the thread whose event crossed it, the gauge
``accord_agent_flagged{agent}`` at 1, a notification, and with ``disable`` the agent's feature
flag switched off in the database (``accord.agents.releases``, changed by ``accord.alerts``), so
every process routes its next request to the agent's fallback. A flagged agent is told once;
its flag is lifted when its window falls below every threshold again, or, for an agent switched
off, when it runs again (``accord flags set AGENT on``: its window starts afresh). Windows are per process: each process judges what it ran; the
switch itself is in the database, for every process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from prometheus_client import REGISTRY, Gauge

from accord.observability.notify import Notice, NoticeKind, notify
from accord.observability.thresholds import AlertConfigError, AlertThresholds
from accord.records import AuditKind, audit_event

logger = logging.getLogger("accord.alerts")

FLAGGED_BY = "accord.alerts"
"""Who the release change log names when an alert switches an agent off."""
TRIPS = frozenset({AuditKind.GUARDRAIL, AuditKind.PERMISSION_DENIED, AuditKind.WRITE_REJECTED,
                   AuditKind.RATE_LIMITED, AuditKind.BUDGET_EXHAUSTED})
"""Audit events that count as a guardrail trip of their agent."""
_FAILED = ("failed", "fallback")
_DISABLED = "disabled"
_HUMAN = "human"
_TASKS_KEPT = 10_000


@cache
def _gauge() -> Gauge:
    return Gauge("accord_agent_flagged", "1 while an agent is flagged by an alert", ["agent"],
                 registry=REGISTRY)


@dataclass(frozen=True)
class Flag:
    """Why an agent was flagged."""

    agent: str
    """The agent."""
    check: str
    """The threshold crossed: ``error_rate``, ``guardrail_trips``, ``rejection_rate``,
    ``tokens`` or ``cost``."""
    value: float
    """What was measured."""
    threshold: float
    """The threshold it crossed."""
    disabled: bool
    """Whether the agent was switched off."""

    @property
    def reason(self) -> str:
        return f"{self.check} {self.value:g} > {self.threshold:g}"


class _Window:
    """One agent's recent events: (time, what, value)."""

    def __init__(self) -> None:
        self.items: deque[tuple[float, str, float]] = deque()

    def add(self, at: float, what: str, value: float = 1.0) -> None:
        self.items.append((at, what, value))

    def trim(self, since: float) -> None:
        while self.items and self.items[0][0] < since:
            self.items.popleft()

    def total(self, what: str) -> float:
        return sum(v for _, w, v in self.items if w == what)


class AgentMonitor:
    """Per-agent windows, judged against :class:`AlertThresholds` as events arrive."""

    def __init__(self, thresholds: AlertThresholds,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.thresholds = thresholds
        self.clock = clock
        self.flagged: dict[str, Flag] = {}
        self._windows: dict[str, _Window] = {}
        self._tasks: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, handle: Any, events: Iterable[dict[str, Any]]) -> list[Flag]:
        """Count a committed step's ``events``; the agents flagged by them (acted upon)."""
        crossed: list[tuple[Flag, dict[str, Any]]] = []
        for event in events:
            agent = self._agent(handle, event)
            if agent is None:
                continue
            with self._lock:
                if not self._count(agent, event):
                    continue
                flag = self._judge(handle, agent)
                if agent in self.flagged:
                    if flag is None:
                        self._lift(agent, "its window is below every threshold again")
                    continue
                if flag is not None:
                    self.flagged[agent] = flag
                    if flag.disabled:
                        self._windows.pop(agent, None)
            if flag is not None:
                crossed.append((flag, event))
        for flag, event in crossed:
            self._act(handle, flag, event)
        return [flag for flag, _ in crossed]

    def _agent(self, handle: Any, event: dict[str, Any]) -> str | None:
        kind, agent = event.get("kind"), event.get("agent")
        task = (str(handle.spec.thread_id), str(event.get("task_id")))
        if kind == AuditKind.AGENT_RUN and agent:
            with self._lock:
                self._tasks[task] = str(agent)
                self._tasks.move_to_end(task)
                while len(self._tasks) > _TASKS_KEPT:
                    self._tasks.popitem(last=False)
        if kind == AuditKind.HUMAN_DECISION and agent in (None, _HUMAN):
            if agent == _HUMAN or self.thresholds.rejection_rate is None:
                return None
            return self._tasks.get(task) or _proposer(handle, event)
        return str(agent) if agent else None

    def _count(self, agent: str, event: dict[str, Any]) -> bool:
        """Add ``event`` to the agent's window; False when it says nothing to judge."""
        kind, now = event.get("kind"), self.clock()
        window = self._windows.setdefault(agent, _Window())
        if kind == AuditKind.AGENT_RUN:
            outcome = event.get("outcome")
            if outcome == _DISABLED:
                return False
            flag = self.flagged.get(agent)
            if flag is not None and flag.disabled:  # a person switched it on again
                self._lift(agent, "switched on again")
                window = self._windows[agent] = _Window()
            window.add(now, "run")
            window.add(now, "failed", float(outcome in _FAILED))
            window.add(now, "tokens", float(event.get("tokens") or 0))
        elif kind in TRIPS:
            window.add(now, "trip")
        elif kind == AuditKind.HUMAN_DECISION:
            window.add(now, "decision")
            window.add(now, "rejected", float(event.get("decision") == "reject"))
        else:
            return False
        window.trim(now - self.thresholds.window_seconds)
        return True

    def _lift(self, agent: str, why: str) -> None:
        self.flagged.pop(agent, None)
        _gauge().labels(agent).set(0)
        logger.info("agent %s no longer flagged: %s", agent, why,
                    extra={"event": "agent_unflagged", "agent": agent})

    def _judge(self, handle: Any, agent: str) -> Flag | None:
        t, window = self.thresholds, self._windows[agent]
        runs, decisions = window.total("run"), window.total("decision")
        checks: list[tuple[str, float | None, Callable[[], float | None]]] = [
            ("error_rate", t.error_rate,
             lambda: window.total("failed") / runs if runs >= t.min_runs else None),
            ("guardrail_trips", t.guardrail_trips, lambda: window.total("trip")),
            ("rejection_rate", t.rejection_rate,
             lambda: (window.total("rejected") / decisions
                      if decisions >= t.min_decisions else None)),
            ("tokens", t.tokens, lambda: window.total("tokens")),
            ("cost", t.cost, lambda: _spent(handle, agent)),
        ]
        for check, threshold, measure in checks:
            if threshold is None:
                continue
            value = measure()
            if value is not None and value > threshold:
                return Flag(agent, check, round(value, 6), threshold, t.disable)
        return None

    def _act(self, handle: Any, flag: Flag, event: dict[str, Any]) -> None:
        thread_id = str(handle.spec.thread_id)
        _gauge().labels(flag.agent).set(1)
        logger.warning("agent %s flagged: %s", flag.agent, flag.reason, extra={
            "event": "agent_flagged", "agent": flag.agent, "check": flag.check,
            "value": flag.value, "threshold": flag.threshold, "thread_id": thread_id})
        saver = getattr(handle, "saver", None)
        if flag.disabled and saver is not None:
            try:
                from accord.agents.releases import releases_for

                releases_for(saver).change(flag.agent, FLAGGED_BY, lambda r: r.model_copy(
                    update={"enabled": False}))
            except Exception:  # noqa: BLE001 - flagging must not fail the run
                logger.warning("could not switch off flagged agent %s", flag.agent,
                               exc_info=True)
        try:
            if saver is not None:
                saver.record_refusal(thread_id, audit_event(
                    AuditKind.AGENT_FLAGGED, node=event.get("node"), agent=flag.agent,
                    task_id=event.get("task_id"), check=flag.check, value=flag.value,
                    threshold=flag.threshold, disabled=flag.disabled))
        except Exception:  # noqa: BLE001
            logger.warning("could not record the flag of agent %s", flag.agent, exc_info=True)
        then = "switched off: its fallback answers from the next request" if flag.disabled \
            else "still enabled"
        notify(Notice(NoticeKind.AGENT_FLAGGED, f"Agent {flag.agent} flagged: {flag.check}",
                      f"{flag.reason} over the last {self.thresholds.window_seconds:g}s; "
                      f"{then}.", thread_id=thread_id,
                      fields=(("agent", flag.agent), ("graph", str(handle.spec.graph or "")),
                              ("thread", thread_id))))


def _proposer(handle: Any, event: dict[str, Any]) -> str | None:
    """The agent whose action a reviewer decided (another process ran it): from the audit."""
    saver, task_id = getattr(handle, "saver", None), event.get("task_id")
    if saver is None or not hasattr(saver, "audit_log"):
        return None
    try:
        runs = [e for e in saver.audit_log(handle.spec.thread_id)
                if e.kind is AuditKind.AGENT_RUN and (task_id is None or e.task_id == task_id)]
    except Exception:  # noqa: BLE001
        return None
    return runs[-1].agent if runs else None


def _spent(handle: Any, agent: str) -> float | None:
    saver = getattr(handle, "saver", None)
    if saver is None:
        return None
    from accord.guardrails.limits import Scope
    from accord.guardrails.usage import usage_for

    try:
        return usage_for(saver).spent(Scope.AGENT, agent)
    except Exception:  # noqa: BLE001
        logger.warning("could not read the usage of agent %s", agent, exc_info=True)
        return None


_lock = threading.Lock()
_monitor: AgentMonitor | None = None
_loaded = False


def configure_alerts(thresholds: AlertThresholds | None) -> AgentMonitor | None:
    """Judge agents against ``thresholds`` from now on (None: no alerts)."""
    global _monitor, _loaded
    with _lock:
        _monitor = AgentMonitor(thresholds) if thresholds and thresholds.enabled else None
        _loaded = True
        return _monitor


def monitor() -> AgentMonitor | None:
    """The process's monitor: configured by :func:`configure_alerts`, else by the environment."""
    global _monitor, _loaded
    if not _loaded:
        thresholds = AlertThresholds.from_env()
        with _lock:
            if not _loaded:
                _monitor = AgentMonitor(thresholds) if thresholds.enabled else None
                _loaded = True
    return _monitor


def observe(handle: Any, events: Iterable[dict[str, Any]]) -> None:
    """Count committed events when alerts are configured; never raises."""
    try:
        found = monitor()
        if found is not None:
            found.observe(handle, events)
    except Exception:  # noqa: BLE001 - alerts must not fail a write that succeeded
        logger.warning("could not judge agents on committed events", exc_info=True)


__all__ = ["AgentMonitor", "AlertConfigError", "AlertThresholds", "Flag", "configure_alerts",
           "monitor", "observe"]
