"""Agent health: per agent and version, runs, error rate, latency, cost, breaker and flag, with
small SVG charts drawn on the server.

Runs and outcomes come from the ``agent_run`` audit events of recent threads; a run's latency is
the time from the thread's previous audit event to its ``agent_run`` event (the events of one
step are written together, so it spans the agent's step). Cost comes from the usage table,
breakers from the breaker store, flags from the release store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from accord.agents.releases import releases_for
from accord.guardrails.usage import usage_for
from accord.records import AuditEvent, AuditKind
from accord.resilience import breakers_for
from accord.server.auth import Principal
from accord.server.console.web import Console, page

THREADS = 500
"""How many of the latest threads the page reads."""


@dataclass
class AgentHealth:
    """What the page shows for one agent version."""

    agent: str
    """The agent's id."""
    version: str
    """Its version."""
    latencies: list[float] = field(default_factory=list)
    """Seconds per run, oldest first."""
    errors: int = 0
    """Runs whose outcome was not ``ok``."""
    cost: float = 0.0
    """Spend recorded for the agent (all versions)."""
    breaker: str = "closed"
    """The agent's circuit breaker."""
    enabled: bool = True
    """The agent's flag."""

    @property
    def runs(self) -> int:
        return len(self.latencies)

    @property
    def error_rate(self) -> float:
        return self.errors / self.runs if self.runs else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def collect(logs: list[list[AuditEvent]]) -> dict[tuple[str, str], AgentHealth]:
    """Per agent version, from each thread's audit log."""
    found: dict[tuple[str, str], AgentHealth] = {}
    for events in logs:
        previous = None
        for event in events:
            if event.kind is AuditKind.AGENT_RUN and event.agent:
                extra = event.details()
                key = (event.agent, str(extra.get("version") or "-"))
                row = found.setdefault(key, AgentHealth(*key))
                spent = (datetime.fromisoformat(event.at)
                         - datetime.fromisoformat(previous)).total_seconds() if previous else 0.0
                row.latencies.append(max(spent, 0.0))
                row.errors += extra.get("outcome") not in (None, "ok")
            previous = event.at
    return found


def sparkline(values: list[float], width: int = 160, height: int = 32) -> str:
    """An inline SVG bar chart of ``values`` (numbers only: nothing to escape)."""
    shown = values[-40:]
    if not shown:
        return ""
    top = max(shown) or 1.0
    step = width / len(shown)
    bars = "".join(
        f'<rect x="{i * step:.1f}" y="{height - v / top * height:.1f}" '
        f'width="{max(step - 1, 1):.1f}" height="{v / top * height:.1f}"/>'
        for i, v in enumerate(shown))
    return (f'<svg class="spark" width="{width}" height="{height}" role="img" '
            f'viewBox="0 0 {width} {height}">{bars}</svg>')


def meter(rate: float, width: int = 80, height: int = 10) -> str:
    """An inline SVG bar for an error rate between 0 and 1."""
    filled = max(0.0, min(rate, 1.0)) * width
    return (f'<svg class="meter" width="{width}" height="{height}">'
            f'<rect width="{width}" height="{height}" fill="#eee"/>'
            f'<rect width="{filled:.1f}" height="{height}" fill="#d1242f"/></svg>')


async def gather(console: Console) -> list[AgentHealth]:
    session = await console.session()
    saver = session.saver

    def read() -> tuple[list[list[AuditEvent]], dict[str, float], dict[str, str], dict[str, Any]]:
        records = saver.threads.list(limit=THREADS)
        logs = [saver.audit_log(r.thread_id) for r in reversed(records)]
        costs = {row.group: row.cost for row in usage_for(saver).summary("agent")}
        breakers = {b.name: b.state.value for b in breakers_for(saver).all()}
        return logs, costs, breakers, releases_for(saver).all()

    logs, costs, breakers, releases = await saver._offload(read)
    rows = collect(logs)
    for (agent, _version), row in rows.items():
        row.cost = costs.get(agent, 0.0)
        row.breaker = breakers.get(f"agent:{agent}", "closed")
        release = releases.get(agent)
        row.enabled = release.enabled if release is not None else True
    return sorted(rows.values(), key=lambda r: (r.agent, r.version))


async def health_page(request: Request, console: Console, who: Principal) -> Response:
    rows = await gather(console)
    shown = [{"row": r, "p50": r.percentile(0.5), "p95": r.percentile(0.95),
              "spark": sparkline(r.latencies), "meter": meter(r.error_rate)} for r in rows]
    return page(request, "health.html", rows=shown, who=who.user)


__all__ = ["AgentHealth", "collect", "health_page", "meter", "sparkline"]
