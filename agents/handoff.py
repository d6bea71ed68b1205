"""What an agent receives (a query-only handoff) and what it gives back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Handoff:
    """The query-only handoff an agent receives instead of the whole conversation."""

    task_id: str
    """Id of the task the agent works on."""
    query: str
    """The request, in the user's words."""
    context: dict[str, Any] = field(default_factory=dict)
    """Values of the shared-context keys the agent declares it reads."""
    thread_id: str = ""
    """The thread the task belongs to (for idempotency keys)."""
    successors: tuple[str, ...] = ()
    """The nodes the agent may hand the task to (``AgentResult(handoff_to=...)``)."""
    ledger: Any = field(default=None, repr=False, compare=False)
    """The run's tool ledger (``accord.agents.ledger.Ledger``), when it runs on accord's saver."""
    reviews: tuple[ReviewedAction, ...] = ()
    """Held actions of this task a human has decided on, oldest first (see :meth:`review`)."""

    def review(self, tool: str | None = None, *, key: str | None = None) -> ReviewedAction | None:
        """The latest decision on a held action of this task: by its idempotency ``key``, or the
        latest one on ``tool`` (any tool when neither is given); ``None`` when there is none."""
        for review in reversed(self.reviews):
            if (key is None or review.key == key) and (tool is None or review.tool == tool):
                return review
        return None

    def render(self) -> str:
        """The handoff as the text an LLM agent sees."""
        lines = [f"Task {self.task_id}: {self.query}"]
        for key, value in sorted(self.context.items()):
            lines.append(f"context.{key}: {value}")
        return "\n".join(lines)


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
    tool_call_id: str = ""
    """The model's tool call this action is (LLM agents), so the decision answers that call."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "args": dict(self.args),
            "reason": self.reason,
            "risk": self.risk,
            "approval_node": self.approval_node,
            "idempotency_key": self.idempotency_key,
            "tool_call_id": self.tool_call_id,
        }


ReviewKind = Literal["approve", "edit", "reject", "respond"]
"""The decisions a reviewer can give (LangChain's ``DecisionType``)."""


@dataclass(frozen=True)
class ReviewedAction:
    """A held action after the human's decision: what the proposing agent gets back.

    ``approve`` and ``edit`` ran the tool once (``result``, or ``error`` when it failed);
    ``reject`` did not run it (``message`` says why); ``respond`` did not run it either, the
    reviewer's ``message`` answers in place of the tool.
    """

    tool: str
    """Name of the tool."""
    key: str
    """The action's idempotency key (same thread, task, tool and proposed arguments)."""
    decision: ReviewKind
    """What the reviewer decided."""
    args: dict[str, Any]
    """The arguments the tool ran with (the edited ones after an edit), else the proposed ones."""
    proposed_args: dict[str, Any] = field(default_factory=dict)
    """The arguments the agent proposed."""
    result: Any = None
    """The tool's result, for ``approve`` and ``edit``."""
    message: str | None = None
    """The reviewer's message: why, for ``reject``; the answer, for ``respond``."""
    error: str | None = None
    """Why the approved tool failed, when it did."""
    by: str | None = None
    """Who decided."""
    tool_call_id: str = ""
    """The model's tool call it answers (LLM agents)."""

    @property
    def ran(self) -> bool:
        """Whether the tool ran (approved or edited, and it did not fail)."""
        return self.decision in ("approve", "edit") and self.error is None

    def answer(self) -> str:
        """The text an LLM agent gets in place of the tool's result, as LangChain's
        ``HumanInTheLoopMiddleware`` words it."""
        if self.decision == "respond":
            return self.message or ""
        if self.decision == "reject":
            why = self.message or "no reason given"
            return f"User rejected the tool call for `{self.tool}` with reason: {why}"
        if self.error is not None:
            return f"{self.tool} was approved but failed: {self.error}"
        content = self.result if isinstance(self.result, str) else json.dumps(self.result, default=str)
        if self.decision == "edit":
            return (f"Note: a human reviewer replaced this tool call before it ran. Executed "
                    f"instead: {self.tool} with arguments {json.dumps(self.args, default=str)}. "
                    f"Do not re-issue your original call.\n\nTool response:\n{content}")
        return content

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool, "key": self.key, "decision": self.decision, "args": dict(self.args),
            "proposed_args": dict(self.proposed_args), "result": self.result,
            "message": self.message, "error": self.error, "by": self.by,
            "tool_call_id": self.tool_call_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReviewedAction:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


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
    actions: tuple[ProposedAction, ...] = ()
    """More actions awaiting approval, decided together with ``action`` (one interrupt)."""
    handoff_to: str | None = None
    """Another node the agent suggests for the task (validated by the transition table)."""
    tool_calls: tuple[dict[str, Any], ...] = ()
    """Tools the agent called (name, args, result), for the audit trail and live output."""
    transcript: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    """An LLM agent's own messages up to its held calls (``messages_to_dict``): its tool loop
    continues from them once the calls are decided."""

    @property
    def held(self) -> tuple[ProposedAction, ...]:
        """Every action awaiting approval."""
        return ((self.action,) if self.action is not None else ()) + tuple(self.actions)


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
