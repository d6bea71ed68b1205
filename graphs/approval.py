"""Human approval: the typed interrupt payload and the validated resume value.

The resume value has one shape everywhere (CLI, notebook, ``Command(resume=...)`` through the
dev server)::

    {"decision": "approve" | "reject" | "edit", "reason": str, "args": {...}, "by": str}

``reason`` is required for ``reject``, ``args`` for ``edit``; ``by`` is optional.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accord.graphs.errors import InvalidResume


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
