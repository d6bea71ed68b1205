"""The agent node: runs an agent on a query-only handoff and turns its result into a checked step.

The agent gets the task and the shared-context keys its spec declares it reads, nothing else;
it may write only the keys it owns. Its spec's timeout bounds the call; when the agent fails
(or times out) its declared fallback takes over, and the fallback is recorded with its cause
(an ``fallback`` audit event), never silent. Interrupts, the hop budget and a lost thread
(``WriterFenced``) pass through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END
from langgraph.types import Command

from accord.agents.handoff import AgentResult, Handoff
from accord.agents.ledger import current_ledger
from accord.agents.runner import AgentRunner
from accord.checkpoints.errors import WriterFenced
from accord.checkpoints.runs import RUN_KEY
from accord.graphs.errors import HopBudgetExceeded
from accord.graphs.state import thread_id
from accord.graphs.transitions import Step, Transitions
from accord.guardrails.base import GuardStop
from accord.guardrails.call import CALL, CallContext, end_user
from accord.guardrails.permissions import PermissionDenied
from accord.records import AuditKind, TaskStatus, audit_event, utcnow
from accord.resilience.breaker import BreakerOpen
from accord.resilience.breaker_sql import BreakerTableCorrupt
from accord.resilience.gate import CallGate

PASS_THROUGH = (GraphBubbleUp, HopBudgetExceeded, WriterFenced)
"""Interrupts, the hop budget and a lost thread are never swallowed by a fallback."""

_STATUS = {
    "completed": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "needs_approval": TaskStatus.AWAITING_APPROVAL,
    "handoff": TaskStatus.IN_PROGRESS,
}


@dataclass
class AgentNode:
    """One agent as a graph node (``await node(state)``)."""

    name: str
    runner: AgentRunner
    transitions: Transitions
    return_to: str
    fallback: AgentRunner | None = None
    delegates: bool = False
    """The agent declares no successor but the router: a ``handoff_to`` it names is handed on by
    the router, within the router's own table entry."""
    guards: Any = None
    """The graph's rate limits and budgets (``accord.guardrails.enforce.Guards``), if any."""

    def handoff(self, state: Mapping[str, Any]) -> Handoff:
        task_id = state.get("active_task") or ""
        task = (state.get("tasks") or {}).get(task_id, {})
        context = state.get("context") or {}
        reads = {k: context[k]["value"] for k in self.runner.spec.reads if k in context}
        return Handoff(task_id=task_id, query=task.get("query", ""), context=reads,
                       thread_id=thread_id(), ledger=current_ledger(task_id),
                       successors=tuple(self.runner.successors))

    async def __call__(self, state: dict[str, Any]) -> Command:
        handoff = self.handoff(state)
        spec = self.runner.spec
        model = self.runner.models.resolve_name(spec.model) if spec.kind == "llm" else None
        gate = CallGate.open(node=self.name, agent=spec.id, task_id=handoff.task_id,
                             spec=spec.breaker, model=model)
        call = self._call_context(handoff)
        token = CALL.set(call)
        try:
            command = await self._call(state, handoff, gate)
        finally:
            CALL.reset(token)
        command = _noted(command, call.events)
        return gate.noted(command) if gate is not None else command

    def _call_context(self, handoff: Handoff) -> CallContext:
        """Who the call is for (the run's end user) and where its usage goes."""
        try:
            config = get_config()
        except RuntimeError:  # called outside a graph run
            config = {}
        configurable = config.get("configurable") or {}
        handle = configurable.get(RUN_KEY)
        return CallContext(node=self.name, agent=self.runner.spec.id, task_id=handoff.task_id,
                           thread_id=handoff.thread_id, user=end_user(configurable),
                           saver=getattr(handle, "saver", None))

    async def _call(self, state: dict[str, Any], handoff: Handoff,
                    gate: CallGate | None) -> Command:
        timeout = self.runner.spec.timeout
        try:
            if gate is not None:
                await gate.enter()  # an open breaker: straight to the fallback, no call made
            if self.guards is not None:
                await self.guards.admit_agent(CALL.get(), self.runner.spec)
            async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
                result = await self.runner.arun(handoff)
            if gate is not None:
                await gate.exit(ok=True)
            return self.settle(state, result, self.runner)
        except PASS_THROUGH:
            raise
        except Exception as error:  # the declared fallback takes over, else the error path
            if isinstance(error, TimeoutError):
                error = TimeoutError(f"{self.runner.spec.id} took longer than {timeout:g}s")
            if gate is not None and not isinstance(error, BreakerOpen | BreakerTableCorrupt
                                                   | GuardStop):
                await gate.exit(ok=False, error=error)
            if isinstance(error, GuardStop):
                _note_stop(error)
            if isinstance(error, PermissionDenied) or (
                    self.fallback is None and isinstance(error, GuardStop)):
                return self._stopped(state, error, self.runner)  # recorded, not applied
            if self.fallback is None:
                return self._failed(state, error, self.runner)
            try:
                result = await self.fallback.arun(handoff)
            except PASS_THROUGH:
                raise
            except GuardStop as second:
                _note_stop(second)
                return self._stopped(state, second, self.fallback)
            except Exception as second:
                return self._failed(state, second, self.fallback)
            note = audit_event(AuditKind.FALLBACK, node=self.name, agent=self.runner.spec.id,
                               fallback=self.fallback.spec.id, task_id=handoff.task_id,
                               error=f"{type(error).__name__}: {error}")
            return self.settle(state, result, self.fallback, note)

    def settle(self, state: Mapping[str, Any], result: AgentResult, runner: AgentRunner,
               note: dict[str, Any] | None = None) -> Command:
        spec = runner.spec
        task_id = state.get("active_task") or ""
        context = state.get("context") or {}
        audit: list[dict[str, Any]] = [note] if note else []
        errors: list[dict[str, Any]] = []
        writes: dict[str, Any] = {}
        for key, value in result.writes.items():
            if key in spec.writes:
                base = context.get(key, {}).get("version", 0)
                writes[key] = {"value": value, "writer": spec.id, "base_version": base,
                               "merge": self.transitions.merges.get(key)}
            else:
                audit.append(audit_event(AuditKind.WRITE_REJECTED, node=self.name, agent=spec.id,
                                         key=key))
                errors.append({"at": utcnow(), "node": self.name,
                               "error": f"{spec.id} may not write {key!r}"})
        for call in result.tool_calls:
            audit.append(audit_event(AuditKind.TOOL_CALL, node=self.name, agent=spec.id,
                                     task_id=task_id, **call))
        update: dict[str, Any] = {
            "tasks": {task_id: {"status": _STATUS[result.status].value, "updated_at": utcnow(),
                                "result": result.reply, "output": result.output,
                                "handoff_to": result.handoff_to}},
            "outputs": {self.name: {"agent": spec.id, "version": spec.version, "kind": spec.kind,
                                    "status": result.status, "reply": result.reply,
                                    "output": result.output}},
            "audit": audit,
            "errors": errors,
        }
        if writes:
            update["context"] = writes
        if result.reply:
            update["messages"] = [AIMessage(result.reply, name=self.name)]
        if result.action is not None:
            update["pending"] = {**result.action.as_dict(), "agent": spec.id, "task_id": task_id}
            return self.transitions.command(self.name, state,
                                            Step(result.action.approval_node, update))
        if result.handoff_to:
            return self._hand_off(state, result.handoff_to, update)
        return self.transitions.command(self.name, state, Step(self.return_to, update))

    def _hand_off(self, state: Mapping[str, Any], wanted: str, update: dict[str, Any]) -> Command:
        """Go to the node the agent chose, checked against the table for this agent.

        A declared successor is gone to directly; an agent that only returns to the router asks
        the router to hand the task on (when the router may go there). Anything else is an
        illegal transition of this agent: recorded and sent to the error path.
        """
        task_id = state.get("active_task") or ""
        target = END if wanted in ("END", END) else wanted
        router = self.transitions.router
        via_router = (self.delegates and router is not None and target != router
                      and not self.transitions.table.allows(self.name, target)
                      and self.transitions.table.allows(router, target))
        task = update["tasks"][task_id]
        if via_router:
            return self.transitions.command(self.name, state, Step(self.return_to, update))
        task["handoff_to"] = None
        if self.transitions.table.allows(self.name, target) and target not in (router, END):
            task["agent"] = target
        return self.transitions.command(self.name, state, Step(target, update))

    def _stopped(self, state: Mapping[str, Any], error: GuardStop,
                 runner: AgentRunner) -> Command:
        """A guard stopped the task (a permission, a rate limit, a spent budget): it fails with
        the guard's message to the user, and the run goes on to its end (no error path: the
        refusal is the answer)."""
        task_id = state.get("active_task") or ""
        message = str(error)
        return self.transitions.command(self.name, state, Step(self.return_to, {
            "tasks": {task_id: {"status": TaskStatus.FAILED.value, "updated_at": utcnow(),
                                "result": message}},
            "messages": [AIMessage(f"Sorry, I can't do that: {message}.", name=self.name)],
            "errors": [{"at": utcnow(), "node": self.name, "agent": runner.spec.id,
                        "error": f"{type(error).__name__}: {message}"}],
            "audit": [],
        }))

    def _failed(self, state: Mapping[str, Any], error: BaseException, runner: AgentRunner) -> Command:
        """The task failed (no fallback, or the fallback failed too): the error path."""
        task_id = state.get("active_task") or ""
        message = f"{type(error).__name__}: {error}".strip()
        target = self.transitions.error_node or self.return_to
        return self.transitions.command(self.name, state, Step(target, {
            "tasks": {task_id: {"status": TaskStatus.FAILED.value, "updated_at": utcnow(),
                                "result": message}},
            "errors": [{"at": utcnow(), "node": self.name, "agent": runner.spec.id,
                        "error": message}],
            "audit": [audit_event(AuditKind.AGENT_FAILED, node=self.name, agent=runner.spec.id,
                                  task_id=task_id, error=message)],
        }))


def _note_stop(error: GuardStop) -> None:
    """Record a guard's refusal in the call's audit (once: a permission check notes its own)."""
    call = CALL.get()
    if call is None or error.audit_kind is None:
        return
    if not any(e.get("kind") == error.audit_kind and e.get("reason") == str(error)
               for e in call.events):
        call.note(error.audit_kind, **error.as_dict())


def _noted(command: Command, events: list[dict[str, Any]]) -> Command:
    """``command`` with the guards' audit events of the call first in its update."""
    update = command.update
    if events and isinstance(update, dict):
        update["audit"] = [*events, *(update.get("audit") or [])]
    return command


__all__ = ["PASS_THROUGH", "AgentNode"]
