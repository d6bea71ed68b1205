"""Approvals on the wire: LangChain's human-in-the-loop shape, with accord's fields alongside.

An approval node's interrupt value is a LangChain ``HITLRequest`` (``action_requests``, one per
held tool call, and ``review_configs`` with ``allowed_decisions`` and ``args_schema``), plus
accord's fields: ``type`` (``"approval"``), ``approval_node``, ``agent``, ``risk``, ``reason``,
``task_id``, ``thread_id`` and ``error`` (why the previous answer was refused). So LangChain's
clients (agent-chat-ui, Agent Inbox) and accord's CLI answer the same interrupts.

A resume value takes either shape, from the CLI, Python or ``Command(resume=...)``:

- LangChain's ``{"decisions": [...]}``, one decision per action request, in order:
  ``{"type": "approve"}``, ``{"type": "edit", "edited_action": {"name", "args"}}`` (the
  arguments the tool runs with), ``{"type": "reject", "message": ...}``,
  ``{"type": "respond", "message": ...}``; accord reads an optional ``"by"`` beside them;
- accord's ``{"decision": "approve" | "reject" | "edit" | "respond", "reason": ..., "args": {...},
  "message": ..., "by": ...}``: ``reason`` for reject, ``args`` (merged over the proposed ones)
  for edit, ``message`` for respond; approve and reject answer every held action, edit and
  respond a single one.

Edited arguments are checked against the tool's schema before anything runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain.agents.middleware.human_in_the_loop import (
    ActionRequest,
    ApproveDecision,
    DecisionType,
    EditDecision,
    HITLRequest,
    RejectDecision,
    RespondDecision,
    ReviewConfig,
)
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from accord.agents.actions import ToolBox
from accord.agents.handoff import ProposedAction
from accord.graphs.errors import InvalidResume

ALL_DECISIONS: tuple[DecisionType, ...] = ("approve", "edit", "reject", "respond")
_RISK = {"low": 0, "medium": 1, "high": 2}


class ApprovalRequest(HITLRequest, total=False):
    """What an approval node shows the human: a LangChain ``HITLRequest`` with accord's fields."""

    type: Literal["approval"]
    """Marks the interrupt as an accord approval."""
    approval_node: str
    """The node asking."""
    agent: str
    """The agent that proposed the actions."""
    risk: Literal["low", "medium", "high"]
    """The highest risk the policies of the held actions declare."""
    reason: str
    """Why the actions need approval."""
    task_id: str
    """The task the actions belong to."""
    thread_id: str
    """The thread that waits."""
    error: str | None
    """Set when the previous resume value was refused: what was wrong with it."""


class ApprovalDecision(BaseModel):
    """accord's resume shape: one decision for the held action(s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Literal["approve", "reject", "edit", "respond"]
    """approve as proposed, reject, approve with edited arguments, or answer for the tool."""
    reason: str | None = None
    """Why (required for reject)."""
    args: dict[str, Any] | None = None
    """Replacement arguments (required for edit, merged over the proposed ones)."""
    message: str | None = None
    """The answer the agent gets in place of the tool's result (required for respond)."""
    by: str | None = Field(None, max_length=200)
    """Who decided."""

    @model_validator(mode="after")
    def _check(self) -> ApprovalDecision:
        if self.decision == "reject" and not (self.reason or self.message or "").strip():
            raise ValueError("a reject needs a reason")
        if self.decision == "edit" and not self.args:
            raise ValueError("an edit needs args")
        if self.decision == "respond" and not (self.message or "").strip():
            raise ValueError("a respond needs a message")
        if self.decision in ("approve", "reject", "respond") and self.args:
            raise ValueError(f"{self.decision} takes no args; use decision 'edit' to change them")
        return self


class ActionDecision(BaseModel):
    """One decision on one held action, whichever shape it came in."""

    model_config = ConfigDict(frozen=True)

    type: Literal["approve", "edit", "reject", "respond"]
    """What the reviewer decided."""
    args: dict[str, Any] | None = None
    """For edit: the arguments the tool runs with."""
    message: str | None = None
    """Why (reject) or the answer in place of the tool (respond)."""
    by: str | None = None
    """Who decided."""


_DECISIONS = TypeAdapter(list[Annotated[ApproveDecision | EditDecision | RejectDecision
                                        | RespondDecision, Field(discriminator="type")]])


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    message = err.get("msg", str(exc)).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _loaded(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidResume(f"resume value is not valid JSON: {exc.msg}") from None
    return value


def parse_decision(value: Any) -> ApprovalDecision:
    """Validate a resume value of accord's shape (dict or JSON text).

    Raises :class:`InvalidResume` with one line saying what is wrong.
    """
    if isinstance(value, ApprovalDecision):
        return value
    value = _loaded(value)
    if not isinstance(value, dict):
        raise InvalidResume(
            f"resume value must be an object with a 'decision', got {type(value).__name__}"
        )
    try:
        return ApprovalDecision.model_validate(value)
    except ValidationError as exc:
        raise InvalidResume(f"invalid resume value: {_first_error(exc)}") from None


def _from_langchain(value: Mapping[str, Any], actions: Sequence[ProposedAction]) -> list[ActionDecision]:
    by = value.get("by")
    if by is not None and (not isinstance(by, str) or len(by) > 200):
        raise InvalidResume("invalid resume value: by: a name of at most 200 characters")
    try:
        raw = _DECISIONS.validate_python(value["decisions"])
    except ValidationError as exc:
        raise InvalidResume(f"invalid resume value: decisions.{_first_error(exc)}") from None
    if len(raw) != len(actions):
        raise InvalidResume(f"this approval holds {len(actions)} action(s); "
                            f"give {len(actions)} decision(s), got {len(raw)}")
    decided = []
    for action, item in zip(actions, raw, strict=True):
        if item["type"] == "edit":
            edited = item["edited_action"]
            if edited["name"] != action.tool:
                raise InvalidResume(f"invalid edit: an edit may not change the tool "
                                    f"({action.tool}, not {edited['name']})")
            decided.append(ActionDecision(type="edit", args=dict(edited["args"]), by=by))
        elif item["type"] == "respond" and not item["message"].strip():
            raise InvalidResume("invalid resume value: a respond needs a message")
        else:
            decided.append(ActionDecision(type=item["type"], message=item.get("message"), by=by))
    return decided


def _from_accord(value: Any, actions: Sequence[ProposedAction]) -> list[ActionDecision]:
    decision = parse_decision(value)
    if decision.decision in ("edit", "respond") and len(actions) != 1:
        raise InvalidResume(f"this approval holds {len(actions)} actions: answer "
                            f"{decision.decision} with one LangChain decision each "
                            '({"decisions": [...]})')
    if decision.decision == "edit":
        args = {**actions[0].args, **(decision.args or {})}
        return [ActionDecision(type="edit", args=args, by=decision.by)]
    message = decision.message if decision.decision == "respond" else decision.reason
    return [ActionDecision(type=decision.decision, message=message or decision.message,
                           by=decision.by) for _ in actions]


def parse_resume(value: Any, actions: Sequence[ProposedAction], toolbox: ToolBox) -> list[ActionDecision]:
    """The decisions on ``actions`` (one each) from a resume value of either shape.

    Each decision must be one its action's policy allows, and edited arguments must fit the
    tool's schema. Raises :class:`InvalidResume` with one line saying what is wrong.
    """
    value = _loaded(value)
    if isinstance(value, dict) and "decisions" in value and "decision" not in value:
        decided = _from_langchain(value, actions)
    else:
        decided = _from_accord(value, actions)
    for action, decision in zip(actions, decided, strict=True):
        allowed = allowed_decisions(toolbox, action)
        if decision.type not in allowed:
            raise InvalidResume(f"{action.tool} allows {', '.join(allowed)}, not {decision.type}")
        if decision.type == "edit":
            error = toolbox.check_args(action.tool, decision.args or {})
            if error is not None:
                raise InvalidResume(f"invalid edit: {error}")
    return decided


def allowed_decisions(toolbox: ToolBox, action: ProposedAction) -> list[DecisionType]:
    """The decisions the policy that held ``action`` allows (every one when none is found)."""
    policy = toolbox.policy_for(action.tool, action.args)
    return list(policy.decisions if policy is not None else ALL_DECISIONS)


def approval_request(
    actions: Sequence[ProposedAction], toolbox: ToolBox, *, approval_node: str, agent: str,
    task_id: str, thread_id: str, error: str | None = None,
) -> ApprovalRequest:
    """The interrupt value for ``actions``: LangChain's ``HITLRequest`` and accord's fields."""
    requests = [ActionRequest(name=a.tool, args=dict(a.args),
                              description=a.reason or f"{a.tool} needs approval")
                for a in actions]
    configs = [ReviewConfig(action_name=a.tool, allowed_decisions=allowed_decisions(toolbox, a),
                            args_schema=toolbox.args_schema(a.tool)) for a in actions]
    reasons = list(dict.fromkeys(a.reason for a in actions if a.reason))
    risk = max((a.risk for a in actions), key=lambda r: _RISK.get(r, 1), default="medium")
    return ApprovalRequest(
        action_requests=requests, review_configs=configs, type="approval",
        approval_node=approval_node, agent=agent, risk=risk, reason="; ".join(reasons),
        task_id=task_id, thread_id=thread_id, error=error,
    )


__all__ = [
    "ALL_DECISIONS",
    "ActionDecision",
    "ApprovalDecision",
    "ApprovalRequest",
    "allowed_decisions",
    "approval_request",
    "parse_decision",
    "parse_resume",
]
