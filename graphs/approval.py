"""Human approval: the typed interrupt payload, the validated resume value and the approval node.

The resume value has one shape everywhere (CLI, notebook, ``Command(resume=...)`` through the
dev server)::

    {"decision": "approve" | "reject" | "edit", "reason": str, "args": {...}, "by": str}

``reason`` is required for ``reject``, ``args`` for ``edit``; ``by`` is optional.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accord.agents.actions import IDEMPOTENCY_ARG, ToolBox
from accord.agents.ledger import current_ledger
from accord.graphs.agent_node import PASS_THROUGH
from accord.graphs.errors import InvalidResume
from accord.graphs.transitions import Step, Transitions
from accord.observability.steps import human_decision
from accord.records import AuditKind, TaskStatus, audit_event, utcnow

DECISION_TOOL = "__decision__"
"""How a recorded approval decision is named in the tool ledger."""


class ApprovalRequest(BaseModel):
    """What an approval node shows the human (the ``interrupt()`` payload)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["approval"] = "approval"
    """Marks the interrupt as an accord approval."""
    approval_node: str
    """The node asking."""
    agent: str
    """The agent that proposed the action."""
    action: str
    """The tool to run once approved."""
    args: dict[str, Any]
    """The arguments it will run with."""
    reason: str = ""
    """Why the action needs approval."""
    risk: Literal["low", "medium", "high"] = "medium"
    """Risk level declared by the policy."""
    task_id: str = ""
    """The task the action belongs to."""
    error: str | None = None
    """Set when the previous resume value was invalid: what was wrong with it."""


class ApprovalDecision(BaseModel):
    """A human's decision on an :class:`ApprovalRequest` (the resume value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Literal["approve", "reject", "edit"]
    """approve as proposed, reject, or approve with edited arguments."""
    reason: str | None = None
    """Why (required for reject)."""
    args: dict[str, Any] | None = None
    """Replacement arguments (required for edit, merged over the proposed ones)."""
    by: str | None = Field(None, max_length=200)
    """Who decided."""

    @model_validator(mode="after")
    def _check(self) -> ApprovalDecision:
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ValueError("a reject needs a reason")
        if self.decision == "edit" and not self.args:
            raise ValueError("an edit needs args")
        if self.decision == "approve" and self.args:
            raise ValueError("approve takes no args; use decision 'edit' to change them")
        return self


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    message = err.get("msg", str(exc)).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_decision(value: Any) -> ApprovalDecision:
    """Validate a resume value (dict or JSON text) into an :class:`ApprovalDecision`.

    Raises :class:`InvalidResume` with one line saying what is wrong.
    """
    if isinstance(value, ApprovalDecision):
        return value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidResume(f"resume value is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidResume(
            f"resume value must be an object with a 'decision', got {type(value).__name__}"
        )
    try:
        return ApprovalDecision.model_validate(value)
    except ValidationError as exc:
        raise InvalidResume(f"invalid resume value: {_first_error(exc)}") from None


@dataclass
class ApprovalNode:
    """Pauses for a human decision; runs the held action after approval, exactly once.

    LangGraph re-runs the node on resume; the decision is replayed from the resume value and
    the action runs under its idempotency key, through the tool ledger: a re-run after a crash
    gets the recorded result instead of acting again.
    """

    name: str
    toolbox: ToolBox
    transitions: Transitions
    return_to: str

    def ask(self, request: ApprovalRequest) -> ApprovalDecision:
        """``interrupt()`` until the resume value is valid; every answer is replayed on re-run."""
        error: str | None = None
        while True:
            raw = interrupt(request.model_copy(update={"error": error}).model_dump())
            try:
                decision = parse_decision(raw)
            except InvalidResume as exc:
                error = str(exc)
                continue
            error = self.edit_error(request, decision)
            if error is None:
                return decision

    def edit_error(self, request: ApprovalRequest, decision: ApprovalDecision) -> str | None:
        """Why edited args do not fit the tool (an unknown key, a value its schema refuses), or
        ``None``: a bad edit is asked again before anything runs, the approval not used up."""
        tool = self.toolbox.tools.get(request.action)
        if decision.decision != "edit" or tool is None:
            return None
        schema = tool.tool_call_schema
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            return None
        fields = set(schema.model_fields) - {IDEMPOTENCY_ARG}
        unknown = sorted(set(decision.args or {}) - fields)
        if unknown:
            return (f"invalid edit: {request.action} takes no argument "
                    f"{', '.join(map(repr, unknown))} (it takes {', '.join(sorted(fields))})")
        try:
            schema.model_validate({**request.args, **(decision.args or {})})
        except ValidationError as exc:
            return f"invalid edit: {_first_error(exc)}"
        return None

    async def decide(self, request: ApprovalRequest, key: str, ledger: Any) -> ApprovalDecision:
        """The decision on this action: the one recorded earlier, or a human's, recorded now.

        A decision is recorded in the tool ledger (durably) before the action runs: a step
        re-run after a crash acts on the decision that was given, and a later resume cannot
        change a decision whose action already happened.
        """
        if ledger is not None:
            found, recorded = await ledger.arecall(key)
            if found:
                return ApprovalDecision.model_validate(recorded)
        decision = self.ask(request)
        if ledger is not None:
            await ledger.arecord(key, DECISION_TOOL, decision.model_dump())
        return decision

    async def __call__(self, state: dict[str, Any]) -> Command:
        pending = state.get("pending")
        if not pending or pending.get("approval_node") != self.name:
            step = Step(self.transitions.error_node or self.return_to, {
                "errors": [{"at": utcnow(), "node": self.name,
                            "error": "no action awaits this approval"}],
            })
            return self.transitions.command(self.name, state, step)
        request = ApprovalRequest(
            approval_node=self.name, agent=pending.get("agent", ""), action=pending["tool"],
            args=pending["args"], reason=pending.get("reason", ""),
            risk=pending.get("risk", "medium"), task_id=pending.get("task_id", ""),
        )
        task_id = request.task_id
        ledger = current_ledger(task_id)
        decision = await self.decide(request, f"{pending['idempotency_key']}:decision", ledger)
        human = audit_event(AuditKind.HUMAN_DECISION, node=self.name, task_id=task_id,
                            tool=request.action, decision=decision.decision,
                            by=decision.by or "unknown", reason=decision.reason,
                            args=decision.args)
        update: dict[str, Any] = {"pending": None}
        if decision.decision == "reject":
            reply = f"{request.action} was rejected: {decision.reason}"
            update["tasks"] = {task_id: {"status": TaskStatus.FAILED.value, "updated_at": utcnow(),
                                         "result": reply}}
        else:
            args = {**request.args, **(decision.args or {})}
            try:
                result = await asyncio.to_thread(self.toolbox.run, request.action, args,
                                                 key=pending["idempotency_key"], ledger=ledger)
            except PASS_THROUGH:
                raise
            except Exception as exc:  # the approved action itself failed: recorded, not lost
                reply = f"{request.action} was approved but failed: {exc}"
                human["error"] = str(exc)
                update["tasks"] = {task_id: {"status": TaskStatus.FAILED.value,
                                             "updated_at": utcnow(), "result": reply}}
                update["errors"] = [{"at": utcnow(), "node": self.name, "error": reply}]
            else:
                reply = f"{request.action} approved by {decision.by or 'a reviewer'}: {result}"
                human["result"] = result
                update["tasks"] = {task_id: {"status": TaskStatus.COMPLETED.value,
                                             "updated_at": utcnow(), "result": reply}}
        update["messages"] = [AIMessage(reply, name=self.name)]
        update["audit"] = [human]
        human_decision(self.name, human)
        return self.transitions.command(self.name, state, Step(self.return_to, update))
