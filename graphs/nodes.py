"""Node factories: every node proposes a transition; ``Transitions.command`` checks it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END
from langgraph.types import Command, interrupt

from accord.agents.actions import ToolBox
from accord.agents.handoff import AgentResult, Handoff
from accord.agents.ledger import current_ledger
from accord.agents.models import ModelResolver
from accord.agents.runner import AgentRunner
from accord.graphs.approval import ApprovalRequest, parse_decision
from accord.graphs.errors import AccordError, HopBudgetExceeded, InvalidResume
from accord.graphs.router import RouteDecision, Router
from accord.graphs.state import FINISHED_STATUSES, HOPS_RESET, audit_event, utcnow
from accord.graphs.transitions import TransitionTable
from accord.guardrails.base import InputGuardrail, run_input_guardrails

_PASS_THROUGH = (GraphBubbleUp, HopBudgetExceeded)
"""Interrupts and the hop budget are never swallowed by a fallback."""


@dataclass(frozen=True)
class Step:
    """What a node proposes: the next node and its state update."""

    goto: str | Sequence[str]
    """Proposed next node, or several to run in parallel (checked against the table)."""
    update: dict[str, Any] = field(default_factory=dict)
    """State update."""


def thread_id() -> str:
    return str(get_config().get("configurable", {}).get("thread_id", ""))


def latest_request(state: Mapping[str, Any]) -> HumanMessage | None:
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message
    return None


@dataclass
class Transitions:
    """Applies the transition table and the hop budget to a proposed step."""

    table: TransitionTable
    max_hops: int | None
    error_node: str | None
    merges: Mapping[str, str] = field(default_factory=dict)
    context_ttl: timedelta | None = None

    def expired_context(self, state: Mapping[str, Any]) -> dict[str, None]:
        """Deletions for shared-context entries older than the TTL."""
        if self.context_ttl is None:
            return {}
        cutoff = (datetime.now(UTC) - self.context_ttl).isoformat(timespec="milliseconds")
        return {k: None for k, e in (state.get("context") or {}).items() if e.get("updated_at", "") < cutoff}

    def command(self, src: str, state: Mapping[str, Any], step: Step) -> Command:
        """Check a proposed step; an undeclared target is recorded and sent to the error path.

        ``step.goto`` may name several targets: they run in parallel (a fan-out) and their
        shared-context writes meet the declared merge functions.
        """
        update = dict(step.update)
        audit = list(update.pop("audit", []))
        errors = list(update.pop("errors", []))
        wanted = [step.goto] if isinstance(step.goto, str) else list(step.goto)
        targets: list[str] = []
        for goto in (END if g == "END" else g for g in wanted):
            if not self.table.allows(src, goto):
                audit.append(audit_event("illegal_transition", node=src, target=goto))
                errors.append({"at": utcnow(), "node": src, "error": f"illegal transition {src} -> {goto}"})
                if self.error_node is None or not self.table.allows(src, self.error_node):
                    raise AccordError(
                        f"illegal transition {src} -> {goto} and no error path is declared"
                    )
                goto = self.error_node
            if goto not in targets:
                targets.append(goto)
        reset = update.get("hops") == HOPS_RESET
        hops = (0 if reset else int(state.get("hops") or 0)) + 1
        ending = all(t == END for t in targets)
        if self.max_hops is not None and hops > self.max_hops and not ending:
            raise HopBudgetExceeded(budget=self.max_hops, node=src, target=",".join(targets))
        update["hops"] = HOPS_RESET if reset else 1
        for target in targets:
            audit.append(audit_event("transition", node=src, target=target, hop=hops))
        update["audit"] = audit
        if errors:
            update["errors"] = errors
        return Command(goto=targets[0] if len(targets) == 1 else targets, update=update)


def router_node(
    name: str,
    router: Router,
    transitions: Transitions,
    models: ModelResolver,
    guards: tuple[InputGuardrail, ...],
) -> tuple[Callable[..., Command], Callable[..., Any]]:
    """The routing node (sync and async)."""

    def before(state: Mapping[str, Any]) -> Step | tuple[str, str]:
        request = latest_request(state)
        if request is None:
            decision = RouteDecision("finish", END, "no request to route")
            return Step(END, {"audit": [audit_event("route", node=name, **decision.as_dict())]})
        task = (state.get("tasks") or {}).get(request.id)
        if task is not None:
            if task.get("status") in FINISHED_STATUSES:
                decision = RouteDecision("finish", END, f"task {task['status']}")
            elif task.get("handoff_to"):
                decision = RouteDecision("handoff", task["handoff_to"], "agent handed off")
            else:
                decision = RouteDecision("default", router.default, "task returned unfinished")
            update: dict[str, Any] = {"audit": [audit_event("route", node=name, **decision.as_dict())]}
            if decision.tier == "handoff":
                update["tasks"] = {request.id: {"handoff_to": None, "agent": decision.target}}
            return Step(decision.target, update)
        text = request.text
        tripped = run_input_guardrails(guards, text)
        if tripped is not None:
            decision = RouteDecision("guardrail", END, tripped.reason)
            return Step(
                END,
                {
                    "hops": HOPS_RESET,
                    "active_task": request.id,
                    "tasks": {request.id: _task(request.id, text, None, "failed", tripped.reason)},
                    "messages": [AIMessage(f"Request rejected: {tripped.reason}.", name=name)],
                    "audit": [
                        audit_event("guardrail", node=name, **tripped.as_dict()),
                        audit_event("route", node=name, **decision.as_dict()),
                    ],
                },
            )
        return request.id, text

    def after(state: Mapping[str, Any], request_id: str, text: str, decision: RouteDecision) -> Step:
        expired = transitions.expired_context(state)
        return Step(
            decision.target,
            {
                **({"context": expired} if expired else {}),
                "hops": HOPS_RESET,
                "active_task": request_id,
                "tasks": {request_id: _task(request_id, text, decision.target, "in_progress")},
                "audit": [audit_event("route", node=name, task_id=request_id, **decision.as_dict())],
            },
        )

    def run(state: dict[str, Any]) -> Command:
        prepared = before(state)
        if isinstance(prepared, Step):
            return transitions.command(name, state, prepared)
        decision = router.decide(prepared[1], state, transitions.table.targets(name), models)
        return transitions.command(name, state, after(state, *prepared, decision))

    async def arun(state: dict[str, Any]) -> Command:
        prepared = before(state)
        if isinstance(prepared, Step):
            return transitions.command(name, state, prepared)
        decision = await router.adecide(prepared[1], state, transitions.table.targets(name), models)
        return transitions.command(name, state, after(state, *prepared, decision))

    return run, arun


def _task(
    task_id: str, query: str, agent: str | None, status: str, result: str | None = None
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": task_id,
        "query": query,
        "agent": agent,
        "status": status,
        "created_at": now,
        "updated_at": now,
        "result": result,
        "handoff_to": None,
    }


@dataclass
class AgentNode:
    """Runs an agent on a query-only handoff and turns its result into a checked step."""

    name: str
    runner: AgentRunner
    transitions: Transitions
    return_to: str
    fallback: AgentRunner | None = None

    def handoff(self, state: Mapping[str, Any]) -> Handoff:
        task_id = state.get("active_task") or ""
        task = (state.get("tasks") or {}).get(task_id, {})
        context = state.get("context") or {}
        reads = {k: context[k]["value"] for k in self.runner.spec.reads if k in context}
        return Handoff(task_id=task_id, query=task.get("query", ""), context=reads,
                       thread_id=thread_id(), ledger=current_ledger())

    def settle(
        self, state: Mapping[str, Any], result: AgentResult, runner: AgentRunner, note: dict | None = None
    ) -> Command:
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
                audit.append(audit_event("write_rejected", node=self.name, agent=spec.id, key=key))
                errors.append({"at": utcnow(), "node": self.name, "error": f"{spec.id} may not write {key!r}"})
        for call in result.tool_calls:
            audit.append(audit_event("tool_call", node=self.name, agent=spec.id, **call))
        status = {
            "completed": "completed",
            "failed": "failed",
            "needs_approval": "awaiting_approval",
            "handoff": "in_progress",
        }[result.status]
        update: dict[str, Any] = {
            "tasks": {task_id: {"status": status, "updated_at": utcnow(), "result": result.reply,
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
            return self.transitions.command(self.name, state, Step(result.action.approval_node, update))
        goto = self.return_to
        return self.transitions.command(self.name, state, Step(goto, update))

    def _failed(self, state: Mapping[str, Any], error: BaseException, runner: AgentRunner) -> Command:
        """The task failed (no fallback, or the fallback failed too): the error path."""
        task_id = state.get("active_task") or ""
        message = f"{type(error).__name__}: {error}".strip()
        return self.transitions.command(self.name, state, Step(self.transitions.error_node or self.return_to, {
            "tasks": {task_id: {"status": "failed", "updated_at": utcnow(), "result": message}},
            "errors": [{"at": utcnow(), "node": self.name, "agent": runner.spec.id, "error": message}],
            "audit": [audit_event("agent_failed", node=self.name, agent=runner.spec.id, error=message)],
        }))

    def _note(self, error: BaseException) -> dict[str, Any]:
        assert self.fallback is not None
        return audit_event("fallback", node=self.name, agent=self.runner.spec.id,
                           fallback=self.fallback.spec.id, error=f"{type(error).__name__}: {error}")

    def run(self, state: dict[str, Any]) -> Command:
        handoff = self.handoff(state)
        try:
            return self.settle(state, self.runner.run(handoff), self.runner)
        except _PASS_THROUGH:
            raise
        except Exception as error:  # the declared fallback takes over, else the error path
            if self.fallback is None:
                return self._failed(state, error, self.runner)
            try:
                result = self.fallback.run(handoff)
            except _PASS_THROUGH:
                raise
            except Exception as second:
                return self._failed(state, second, self.fallback)
            return self.settle(state, result, self.fallback, self._note(error))

    async def arun(self, state: dict[str, Any]) -> Command:
        handoff = self.handoff(state)
        timeout = self.runner.spec.timeout
        try:
            result = await asyncio.wait_for(self.runner.arun(handoff), timeout)
            return self.settle(state, result, self.runner)
        except _PASS_THROUGH:
            raise
        except Exception as error:
            if isinstance(error, TimeoutError):
                error = TimeoutError(f"{self.runner.spec.id} took longer than {timeout}s")
            if self.fallback is None:
                return self._failed(state, error, self.runner)
            try:
                result = await self.fallback.arun(handoff)
            except _PASS_THROUGH:
                raise
            except Exception as second:
                return self._failed(state, second, self.fallback)
            return self.settle(state, result, self.fallback, self._note(error))


@dataclass
class ApprovalNode:
    """Pauses for a human decision; runs the held action after approval, exactly once."""

    name: str
    toolbox: ToolBox
    transitions: Transitions
    return_to: str

    def ask(self, request: ApprovalRequest) -> Any:
        """``interrupt()`` until the resume value is valid; every answer is replayed on re-run."""
        error: str | None = None
        while True:
            raw = interrupt(request.model_copy(update={"error": error}).model_dump())
            try:
                return parse_decision(raw)
            except InvalidResume as exc:
                error = str(exc)

    def run(self, state: dict[str, Any]) -> Command:
        pending = state.get("pending")
        if not pending or pending.get("approval_node") != self.name:
            step = Step(self.transitions.error_node or self.return_to, {
                "errors": [{"at": utcnow(), "node": self.name, "error": "no action awaits this approval"}],
            })
            return self.transitions.command(self.name, state, step)
        request = ApprovalRequest(
            approval_node=self.name, agent=pending.get("agent", ""), action=pending["tool"],
            args=pending["args"], reason=pending.get("reason", ""), risk=pending.get("risk", "medium"),
            task_id=pending.get("task_id", ""),
        )
        decision = self.ask(request)
        task_id = request.task_id
        human = audit_event("human_decision", node=self.name, task_id=task_id, tool=request.action,
                            decision=decision.decision, by=decision.by or "unknown",
                            reason=decision.reason, args=decision.args)
        update: dict[str, Any] = {"pending": None}
        if decision.decision == "reject":
            reply = f"{request.action} was rejected: {decision.reason}"
            update["tasks"] = {task_id: {"status": "failed", "updated_at": utcnow(), "result": reply}}
        else:
            args = {**request.args, **(decision.args or {})}
            try:
                result = self.toolbox.run(request.action, args, key=pending["idempotency_key"],
                                          ledger=current_ledger())
            except _PASS_THROUGH:
                raise
            except Exception as exc:  # the approved action itself failed: recorded, not lost
                reply = f"{request.action} was approved but failed: {exc}"
                human["error"] = str(exc)
                update["tasks"] = {task_id: {"status": "failed", "updated_at": utcnow(), "result": reply}}
                update["errors"] = [{"at": utcnow(), "node": self.name, "error": reply}]
            else:
                reply = f"{request.action} approved by {decision.by or 'a reviewer'}: {result}"
                human["result"] = result
                update["tasks"] = {task_id: {"status": "completed", "updated_at": utcnow(), "result": reply}}
        update["messages"] = [AIMessage(reply, name=self.name)]
        update["audit"] = [human]
        return self.transitions.command(self.name, state, Step(self.return_to, update))
