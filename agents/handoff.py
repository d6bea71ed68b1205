"""What an agent receives (a query-only handoff) and what it gives back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from accord.resilience.envelope import HandoffEnvelope

Handoff = HandoffEnvelope
"""The query-only handoff an agent receives instead of the whole conversation: the versioned
envelope (``accord.resilience.envelope``) its sender stored, checked on arrival. An agent reads
``handoff.query``, ``handoff.context``, ``handoff.successors``, ``handoff.task_id``."""


@dataclass(frozen=True)
class ProposedAction:
    """A tool call held back because a declared policy asks a human to approve it."""

    tool: str
    """Name of the tool."""
    args: dict[str, Any]
    """Arguments the agent chose."""
    reason: str = ""
    """Why the agent wants to do it."""
    risk: Literal["low", "medium", "high"] = "medium"
    """Risk level from the policy that held it back."""
    approval_node: str = ""
    """The approval node that decides on it."""
    idempotency_key: str = ""
    """Key under which the side effect is recorded, so it happens once."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "args": dict(self.args),
            "reason": self.reason,
            "risk": self.risk,
            "approval_node": self.approval_node,
            "idempotency_key": self.idempotency_key,
        }


@dataclass(frozen=True)
class AgentResult:
    """What an agent hands back to the workflow."""

    reply: str
    """Text for the user."""
    status: Literal["completed", "failed", "needs_approval", "handoff"] = "completed"
    """Outcome of the task from the agent's point of view."""
    output: dict[str, Any] | None = None
    """Structured output (validated against the spec's output schema when it has one)."""
    writes: dict[str, Any] = field(default_factory=dict)
    """Shared-context writes; only keys the spec owns are applied."""
    action: ProposedAction | None = None
    """An action awaiting human approval."""
    handoff_to: str | None = None
    """Another node the agent suggests for the task (validated by the transition table)."""
    tool_calls: tuple[dict[str, Any], ...] = ()
    """Tools the agent called (name, args, result), for the audit trail and live output."""


HANDOFF_TARGET = "accord_handoff_to"
"""Metadata key of a handoff tool, and artifact key of its answer: the node it hands over to."""


def handoff_tool(node: str, description: str = "") -> Any:
    """``transfer_to_<node>``: the tool an LLM agent calls to hand its task to ``node``.

    One tool per declared successor, so an LLM can only choose among them (a call to any other
    name is answered as an unknown tool); calling it ends the agent's turn (``return_direct``).
    """
    from langchain_core.tools import StructuredTool

    def transfer(reason: str = "") -> tuple[str, dict[str, str]]:
        return f"Handed over to {node}.", {HANDOFF_TARGET: node, "reason": reason}

    name = "transfer_to_" + re.sub(r"[^A-Za-z0-9_-]", "_", node)
    return StructuredTool.from_function(
        transfer, name=name, return_direct=True, response_format="content_and_artifact",
        description=f"Hand the task over to {node}" + (f" ({description})" if description else "")
        + ". Give a short reason.",
        metadata={HANDOFF_TARGET: node},
    )
