"""The agent call in progress: who it is for, and what the guards noted during it.

The agent node opens a :class:`CallContext` around each agent call; the guards that run inside
the call (rate limits and budgets on model calls, tool permissions) read the end user and the
task from it and add their audit events to it, which the node writes with its step. An LLM
agent's own loop runs with a config of its own, so this, not the run's config, is how the
guards inside it know the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from langgraph.config import get_config

from accord.records import AuditKind, audit_event

USER_KEYS = ("langgraph_auth_user_id", "user_id")
"""Where a run's end user is found in ``configurable``: the identity the LangGraph server's
auth verified first, then the caller's ``user_id``."""


def end_user(configurable: Mapping[str, Any] | None) -> str | None:
    """The end user a run is for, from its ``configurable`` (None: not known)."""
    for key in USER_KEYS:
        value = (configurable or {}).get(key)
        if value not in (None, ""):
            return str(value)
    return None


@dataclass
class CallContext:
    """One agent call: the run's identity and the guards' notes."""

    node: str
    """The agent node."""
    agent: str
    """The agent id."""
    task_id: str
    """The task (the request) it works on."""
    thread_id: str
    """The thread."""
    user: str | None
    """The end user the run is for."""
    saver: Any = field(default=None, repr=False)
    """accord's saver of the run (None: no saver)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Audit events the guards recorded during the call."""

    def note(self, kind: AuditKind, **fields: Any) -> None:
        self.events.append(audit_event(kind, node=self.node, agent=self.agent,
                                       task_id=self.task_id, **fields))


CALL: ContextVar[CallContext | None] = ContextVar("accord_agent_call", default=None)
"""The agent call in progress (set by the agent node)."""


def current_user() -> str | None:
    """The end user of the agent call or graph run in progress (None outside one)."""
    call = CALL.get()
    if call is not None:
        return call.user
    try:
        return end_user(get_config().get("configurable"))
    except RuntimeError:  # not inside a graph run
        return None


__all__ = ["CALL", "USER_KEYS", "CallContext", "current_user", "end_user"]
