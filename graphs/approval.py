"""The approval node: pauses for a human decision on held tool calls, runs the approved ones
exactly once, and returns the outcome to the agent that proposed them.

The interrupt value and the resume value are LangChain's human-in-the-loop shapes with accord's
fields alongside (see :mod:`accord.graphs.hitl`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.types import Command, interrupt

from accord.agents.actions import ToolBox
from accord.agents.handoff import ProposedAction, ReviewedAction
from accord.agents.ledger import DECISION_TOOL, current_ledger, decision_key
from accord.graphs.agent_node import PASS_THROUGH
from accord.graphs.errors import InvalidResume
from accord.graphs.hitl import (
    ActionDecision,
    ApprovalDecision,
    ApprovalRequest,
    approval_request,
    parse_decision,
    parse_resume,
)
from accord.graphs.state import thread_id
from accord.graphs.transitions import Step, Transitions
from accord.observability.steps import human_decision
from accord.records import AuditKind, TaskStatus, audit_event, utcnow


def held_actions(pending: dict[str, Any]) -> list[ProposedAction]:
    """The actions a ``pending`` record holds (a record of one action, from before batches,
    reads as a batch of one)."""
    fields = ProposedAction.__dataclass_fields__
    items = pending.get("actions") or [pending]
    return [ProposedAction(**{k: v for k, v in a.items() if k in fields}) for a in items]


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

    def ask(self, request: ApprovalRequest, actions: list[ProposedAction]) -> list[ActionDecision]:
        """``interrupt()`` until the resume value is valid; every answer is replayed on re-run.

        A refused answer (malformed, a decision the policy does not allow, edited arguments the
        tool's schema refuses) asks again with the error: nothing runs, the approval waits.
        """
        error: str | None = None
        while True:
            raw = interrupt({**request, "error": error})
            try:
                return parse_resume(raw, actions, self.toolbox)
            except InvalidResume as exc:
                error = str(exc)

    async def decide(self, request: ApprovalRequest, actions: list[ProposedAction],
                     ledger: Any) -> list[ActionDecision]:
        """The decisions on these actions: the ones recorded earlier, or a human's, recorded now.

        Decisions are recorded in the tool ledger (durably) before any action runs: a step
        re-run after a crash acts on the decisions that were given, and a later resume cannot
        change a decision whose action already happened.
        """
        key = decision_key(*(a.idempotency_key for a in actions))
        if ledger is not None:
            found, recorded = await ledger.arecall(key)
            if found and isinstance(recorded, dict) and "decisions" in recorded:
                return [ActionDecision.model_validate(d) for d in recorded["decisions"]]
            if found:  # one action's decision, recorded in accord's shape
                return parse_resume(recorded, actions, self.toolbox)
        decisions = self.ask(request, actions)
        if ledger is not None:
            await ledger.arecord(key, DECISION_TOOL,
                                 {"decisions": [d.model_dump() for d in decisions]})
        return decisions

    async def review(self, action: ProposedAction, decision: ActionDecision,
                     ledger: Any) -> ReviewedAction:
        """Carry out one decision: run the tool once for approve and edit."""
        base = dict(tool=action.tool, key=action.idempotency_key, decision=decision.type,
                    args=dict(action.args), proposed_args=dict(action.args), by=decision.by,
                    message=decision.message, tool_call_id=action.tool_call_id)
        if decision.type in ("reject", "respond"):
            return ReviewedAction(**base)
        args = dict(decision.args) if decision.type == "edit" and decision.args else action.args
        base["args"] = args
        try:
            result = await asyncio.to_thread(self.toolbox.run, action.tool, args,
                                             key=action.idempotency_key, ledger=ledger)
        except PASS_THROUGH:
            raise
        except Exception as exc:  # the approved action itself failed: recorded, not lost
            return ReviewedAction(**base, error=f"{type(exc).__name__}: {exc}")
        return ReviewedAction(**base, result=result)

    async def __call__(self, state: dict[str, Any]) -> Command:
        pending = state.get("pending")
        reviews = list((pending or {}).get("reviews") or ())
        decided = {r["key"] for r in reviews}
        actions = [a for a in held_actions(pending or {})
                   if a.approval_node == self.name and a.idempotency_key not in decided]
        if not pending or pending.get("approval_node") != self.name or not actions:
            step = Step(self.transitions.error_node or self.return_to, {
                "errors": [{"at": utcnow(), "node": self.name,
                            "error": "no action awaits this approval"}],
            })
            return self.transitions.command(self.name, state, step)
        task_id = pending.get("task_id", "")
        request = approval_request(actions, self.toolbox, approval_node=self.name,
                                   agent=pending.get("agent", ""), task_id=task_id,
                                   thread_id=thread_id())
        ledger = current_ledger(task_id)
        decisions = await self.decide(request, actions, ledger)
        audit: list[dict[str, Any]] = []
        messages: list[AIMessage] = []
        errors: list[dict[str, Any]] = []
        done: list[ReviewedAction] = []
        for action, decision in zip(actions, decisions, strict=True):
            review = await self.review(action, decision, ledger)
            done.append(review)
            event = audit_event(AuditKind.HUMAN_DECISION, node=self.name, task_id=task_id,
                                tool=action.tool, decision=decision.type,
                                by=decision.by or "unknown", reason=decision.message,
                                args=decision.args if decision.type == "edit" else None)
            if review.error is not None:
                event["error"] = review.error
                errors.append({"at": utcnow(), "node": self.name,
                               "error": f"{action.tool} was approved but failed: {review.error}"})
            elif review.ran:
                event["result"] = review.result
            audit.append(event)
            human_decision(self.name, event)
            messages.append(AIMessage(_note(review), name=self.name))
        failed = [r for r in done if r.error is not None]
        if failed:  # an approved action failed: the task and the run end failed, never done
            return self._action_failed(state, task_id, failed, audit, messages, errors, ledger)
        task = (state.get("tasks") or {}).get(task_id, {})
        update: dict[str, Any] = {"audit": audit, "messages": messages, "errors": errors}
        back = pending.get("node")
        if back and self.transitions.table.allows(self.name, back):
            # the proposing agent gets the outcome and decides what comes next
            update["pending"] = {**pending, "approval_node": None,
                                 "reviews": [*reviews, *(r.as_dict() for r in done)]}
            update["tasks"] = {task_id: {
                "status": TaskStatus.IN_PROGRESS.value, "updated_at": utcnow(),
                "reviews": [*(task.get("reviews") or ()), *(r.as_dict() for r in done)]}}
            return self.transitions.command(self.name, state, Step(back, update))
        # no agent to return to (an action held before actions returned to their agent)
        update["pending"] = None
        ok = all(r.ran or r.decision == "respond" for r in done)
        update["tasks"] = {task_id: {
            "status": (TaskStatus.COMPLETED if ok else TaskStatus.FAILED).value,
            "updated_at": utcnow(), "result": "\n".join(m.text for m in messages)}}
        return self.transitions.command(self.name, state, Step(self.return_to, update))

    def _action_failed(self, state: dict[str, Any], task_id: str, failed: list[ReviewedAction],
                       audit: list[dict[str, Any]], messages: list[AIMessage],
                       errors: list[dict[str, Any]], ledger: Any) -> Command:
        """An approved action that failed (a business rule refused it, the tool broke): the task
        is ``failed`` with the reason, the run ends and the thread is ``failed`` with it, never
        ``done``. The decisions stay recorded; continuing the thread closes it."""
        cause = "; ".join(f"{r.tool} was approved but failed: {r.error}" for r in failed)
        update: dict[str, Any] = {
            "pending": None, "messages": messages, "errors": errors,
            "tasks": {task_id: {"status": TaskStatus.FAILED.value, "updated_at": utcnow(),
                                "result": cause}},
            "audit": [*audit, *(audit_event(AuditKind.ACTION_FAILED, node=self.name,
                                            task_id=task_id, tool=r.tool, error=r.error)
                                for r in failed)],
        }
        if ledger is not None:
            ledger.handle.fail(self.name, cause)
        return self.transitions.command(self.name, state, Step(self.return_to, update))


def _note(review: ReviewedAction) -> str:
    """The conversation's line about one decision."""
    who = review.by or "a reviewer"
    if review.decision == "reject":
        return f"{review.tool} was rejected by {who}: {review.message or 'no reason given'}"
    if review.decision == "respond":
        return f"{review.tool} was answered by {who}: {review.message}"
    if review.error is not None:
        return f"{review.tool} was approved but failed: {review.error}"
    edited = " (edited)" if review.decision == "edit" else ""
    return f"{review.tool} approved{edited} by {who}: {review.result}"


__all__ = ["DECISION_TOOL", "ApprovalDecision", "ApprovalNode", "ApprovalRequest",
           "held_actions", "parse_decision"]
