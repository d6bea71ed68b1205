"""Human escalation, the last hop of a fallback chain: a person answers the task.

The agent node stops with ``interrupt()`` and an :class:`EscalationRequest` (the task, and every
hop that failed with its cause). The resume value is an :class:`EscalationAnswer`, the same from
the CLI (``accord resume THREAD --respond TEXT`` or ``--reject REASON``), a notebook or
``Command(resume=...)`` through the dev server::

    {"decision": "reply", "reply": "...", "by": "ana"}     # the answer the customer gets
    {"decision": "reject", "reason": "...", "by": "ana"}   # the task fails with this reason

LangChain's decision shape answers it too, so one client answers approvals and escalations
alike (``accord resume THREAD --respond TEXT``, the console, Agent Inbox)::

    {"decisions": [{"type": "respond", "message": "..."}], "by": "ana"}   # a reply
    {"decisions": [{"type": "reject", "message": "..."}], "by": "ana"}    # a reject
    {"decision": "respond", "message": "...", "by": "ana"}               # accord's shorthand

An invalid value asks again, with the error in the payload; the thread stays resumable.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accord.errors import AccordError


class InvalidAnswer(AccordError):
    """A resume value that is not a valid :class:`EscalationAnswer`."""


class EscalationRequest(BaseModel):
    """What the person asked sees (the ``interrupt()`` payload)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["escalation"] = "escalation"
    """Marks the interrupt as an escalation (approvals are ``approval``)."""
    action: Literal["reply"] = "reply"
    """What is asked for: a reply to the request."""
    node: str
    """The agent node whose task this is."""
    agent: str
    """The agent that could not do it."""
    task_id: str
    """The task."""
    query: str
    """The request, in the user's words."""
    reason: str
    """Why it reached a person (the last hop's cause and error)."""
    hops: list[dict[str, Any]] = Field(default_factory=list)
    """The hops tried before, each with its cause."""
    error: str | None = None
    """Set when the previous resume value was invalid: what was wrong with it."""


class EscalationAnswer(BaseModel):
    """A person's answer to an :class:`EscalationRequest` (the resume value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Literal["reply", "reject"]
    """``reply``: the task is done with ``reply``; ``reject``: the task fails with ``reason``."""
    reply: str | None = None
    """The answer the requester gets (for ``reply``)."""
    reason: str | None = None
    """Why the task is declined (for ``reject``)."""
    by: str | None = Field(None, max_length=200)
    """Who answered."""

    @model_validator(mode="after")
    def _check(self) -> EscalationAnswer:
        if self.decision == "reply" and not (self.reply or "").strip():
            raise ValueError("a reply needs its text")
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ValueError("a reject needs a reason")
        return self


def _from_decisions(value: dict[str, Any]) -> dict[str, Any]:
    """LangChain's ``{"decisions": [...]}`` and accord's ``respond`` shorthand as an answer."""
    by = value.get("by")
    if "decisions" in value:
        decisions = value["decisions"]
        if not isinstance(decisions, list) or len(decisions) != 1 or not isinstance(
                decisions[0], dict):
            raise InvalidAnswer("an escalation is answered with exactly one decision: "
                                "{'decisions': [{'type': 'respond', 'message': ...}]}")
        kind, message = decisions[0].get("type"), decisions[0].get("message")
        if kind in ("approve", "edit"):
            value = {"decision": kind}
        elif kind in ("respond", "reject"):
            value = {"decision": "reply" if kind == "respond" else "reject",
                     "reply" if kind == "respond" else "reason": message}
        else:
            raise InvalidAnswer(f"unknown decision type {kind!r}: an escalation takes "
                                "'respond' (the reply) or 'reject'")
        return {**value, "by": by} if by is not None else value
    if value.get("decision") == "respond":
        rest = {k: v for k, v in value.items() if k not in ("decision", "message")}
        return {**rest, "decision": "reply", "reply": value.get("message")}
    return value


def parse_answer(value: Any) -> EscalationAnswer:
    """Validate a resume value (dict or JSON text); :class:`InvalidAnswer` says what is wrong."""
    if isinstance(value, EscalationAnswer):
        return value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidAnswer(f"resume value is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidAnswer("an escalation is answered with {'decision': 'reply', 'reply': ...} "
                            f"or {{'decision': 'reject', 'reason': ...}}, got {type(value).__name__}")
    value = _from_decisions(value)
    if value.get("decision") in ("approve", "edit"):
        raise InvalidAnswer("this thread waits for a person's reply, not an approval: "
                            "answer with --respond TEXT (or --reply) or --reject REASON")
    try:
        return EscalationAnswer.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        what = err.get("msg", str(exc)).removeprefix("Value error, ")
        raise InvalidAnswer(f"invalid answer: {where}: {what}" if where
                            else f"invalid answer: {what}") from None


def ask_human(request: EscalationRequest) -> EscalationAnswer:
    """``interrupt()`` until the answer is valid (every answer is replayed on a re-run)."""
    error: str | None = None
    while True:
        raw = interrupt(request.model_copy(update={"error": error}).model_dump())
        try:
            return parse_answer(raw)
        except InvalidAnswer as exc:
            error = str(exc)


__all__ = ["EscalationAnswer", "EscalationRequest", "InvalidAnswer", "ask_human", "parse_answer"]
