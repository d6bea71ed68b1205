"""`CallGate`: the breakers in front of one agent call (the agent's own and its provider's).

The agent node asks the gate before calling (`enter` raises `BreakerOpen` when a breaker is
open, so the fallback answers and nothing is called), tells it how the call ended (`exit`), and
adds what the breakers did to the step's audit (`noted`). Breakers live in the database of the
run's saver (`accord.resilience.breaker_sql.breakers_for`); outside a run on accord's saver, or
for an agent without a ``breaker`` spec, there is no gate.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from langgraph.config import get_config
from langgraph.types import Command

from accord.checkpoints.runs import RUN_KEY, RunHandle
from accord.records import AuditKind, audit_event
from accord.resilience.breaker import Breaker, BreakerOpen, BreakerSpec, BreakerState, BreakerStore
from accord.resilience.breaker_sql import breakers_for


def agent_breaker(agent_id: str) -> str:
    """The name of an agent's breaker."""
    return f"agent:{agent_id}"


def provider_breaker(model: str) -> str:
    """The name of a model provider's breaker (the resolved ``provider:model`` reference)."""
    return f"provider:{model}"


def _run_saver() -> Any:
    try:
        handle = get_config().get("configurable", {}).get(RUN_KEY)
    except RuntimeError:  # not inside a graph run
        return None
    return handle.saver if isinstance(handle, RunHandle) else None


@dataclass
class CallGate:
    """The breakers one call passes; collects the audit events of what they did."""

    store: BreakerStore
    """Where the breakers live."""
    spec: BreakerSpec
    """When they trip and when they retry."""
    names: tuple[str, ...]
    """The breakers of this call (agent, then provider)."""
    node: str
    """The agent node (for the audit)."""
    agent: str
    """The agent id (for the audit)."""
    task_id: str
    """The task (for the audit)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Audit events of this call's breakers."""

    @classmethod
    def open(cls, *, node: str, agent: str, task_id: str, spec: BreakerSpec | None,
             model: str | None, of_agent: bool = True) -> CallGate | None:
        """The gate of an agent call in the current run, or None (no breaker spec, no saver).

        ``of_agent=False`` leaves the agent's own breaker out (the agent on another model, a
        fallback hop, passes its new provider's breaker only)."""
        if spec is None:
            return None
        saver = _run_saver()
        if saver is None:
            return None
        names = ((agent_breaker(agent),) if of_agent else ()) + (
            (provider_breaker(model),) if model else ())
        if not names:
            return None
        return cls(breakers_for(saver), spec, names, node, agent, task_id)

    def _event(self, kind: AuditKind, breaker: Breaker, **extra: Any) -> None:
        self.events.append(audit_event(kind, node=self.node, agent=self.agent,
                                       task_id=self.task_id, breaker=breaker.name,
                                       state=breaker.state.value, **extra))

    async def enter(self) -> None:
        """Raise `BreakerOpen` when a breaker of this call is open (no call is to be made)."""
        for name in self.names:
            allowed, breaker = await asyncio.to_thread(self.store.admit, name, self.spec)
            if not allowed:
                retry_at = (breaker.opened_at or 0.0) + self.spec.cool_down
                self._event(AuditKind.BREAKER_SKIPPED, breaker, retry_at=retry_at)
                raise BreakerOpen(name, retry_at)
            if breaker.state is BreakerState.HALF_OPEN:
                self._event(AuditKind.BREAKER_PROBE, breaker)

    async def exit(self, *, ok: bool, error: BaseException | None = None) -> None:
        """Count the call's outcome on each breaker; record those that opened or closed."""
        for name in self.names:
            before, after = await asyncio.to_thread(self.store.record, name, self.spec, ok=ok)
            if after.state is BreakerState.OPEN and before.state is not BreakerState.OPEN:
                cause = f"{type(error).__name__}: {error}" if error is not None else None
                self._event(AuditKind.BREAKER_OPENED, after, failures=after.failures,
                            error=cause)
            elif after.state is BreakerState.CLOSED and before.state is not BreakerState.CLOSED:
                self._event(AuditKind.BREAKER_CLOSED, after)

    def noted(self, command: Command) -> Command:
        """``command`` with the breakers' audit events in its update."""
        update = command.update
        if self.events and isinstance(update, dict) and isinstance(update.get("audit"), list):
            update["audit"] = [*self.events, *update["audit"]]
        return command


__all__ = ["CallGate", "agent_breaker", "provider_breaker"]
