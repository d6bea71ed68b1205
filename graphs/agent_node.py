"""The agent node: runs an agent on a query-only handoff and turns its result into a checked step.

The agent gets the task and the shared-context keys its spec declares it reads, nothing else;
it may write only the keys it owns. Its spec bounds the call (``step_timeout``); when the agent
times out, fails after its retries, or its breaker is open, the task moves along its fallback
chain (the agent on another model, another agent, a person through an interrupt), each hop
recorded in the task's record and as a ``fallback`` audit event with its cause, never silent.
When the chain is exhausted the task fails with the cause (``agent_failed``), after
``accord.resilience.fallback.task_exhausted``. Interrupts, the hop budget and a lost thread
(``WriterFenced``) pass through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain.agents.middleware._retry import calculate_delay
from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END
from langgraph.types import Command

from accord.agents.flags import AgentDisabled
from accord.agents.handoff import AgentResult, Handoff, ReviewedAction
from accord.agents.ledger import current_ledger
from accord.agents.runner import AgentRunner
from accord.checkpoints.errors import WriterFenced
from accord.checkpoints.runs import RUN_KEY
from accord.graphs.errors import HopBudgetExceeded
from accord.graphs.handoffs import HandoffIssuer
from accord.graphs.transitions import Step, Transitions
from accord.graphs.versioning import AgentVersions, run_versioned
from accord.guardrails.base import GuardStop
from accord.guardrails.call import CALL, CallContext, end_user
from accord.guardrails.permissions import PermissionDenied
from accord.observability.steps import agent_step
from accord.records import AuditKind, TaskStatus, audit_event, utcnow
from accord.resilience.attempts import AttemptLog, attempts
from accord.resilience.breaker import BreakerOpen
from accord.resilience.breaker_sql import BreakerTableCorrupt
from accord.resilience.deadletters import dead_letter_event
from accord.resilience.envelope import HANDOFFS_FIELD
from accord.resilience.escalation import EscalationRequest, ask_human
from accord.resilience.fallback import (
    HUMAN,
    ExhaustedHook,
    Exhaustion,
    Hop,
    HopKind,
    HumanDeclined,
    cause_of,
    task_exhausted,
)
from accord.resilience.gate import CallGate
from accord.resilience.transient import is_transient

PASS_THROUGH = (GraphBubbleUp, HopBudgetExceeded, WriterFenced)
"""Interrupts, the hop budget and a lost thread are never swallowed by a fallback."""

CHAIN_TOOL = "__fallback_chain__"
"""How the hops tried before a person was asked are named in the tool ledger."""

_STATUS = {
    "completed": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "needs_approval": TaskStatus.AWAITING_APPROVAL,
    "handoff": TaskStatus.IN_PROGRESS,
}


@dataclass(frozen=True)
class Link:
    """One way to do a node's task: its agent, the agent on another model, another agent, or a
    person (no runner)."""

    kind: HopKind
    """Who it is."""
    runner: AgentRunner | None = None
    """What runs it (None for a person)."""

    @property
    def agent(self) -> str:
        return self.runner.spec.id if self.runner is not None else HUMAN

    @property
    def model(self) -> str | None:
        return self.runner.model_name if self.runner is not None else None


@dataclass
class _Tried:
    """How one hop went."""

    hop: Hop
    result: AgentResult | None = None
    error: BaseException | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


@dataclass
class AgentNode:
    """One agent as a graph node (``await node(state)``)."""

    name: str
    runner: AgentRunner
    transitions: Transitions
    return_to: str
    chain: tuple[Link, ...] = ()
    """The fallback chain, in order, after the agent itself."""
    delegates: bool = False
    """The agent declares no successor but the router: a ``handoff_to`` it names is handed on by
    the router, within the router's own table entry."""
    approval_nodes: frozenset[str] = frozenset()
    """The graph's approval nodes: coming back from one continues the agent's visit."""
    on_exhausted: ExhaustedHook | None = None
    """Called (after :func:`~accord.resilience.fallback.task_exhausted` logs it) when a task's
    chain is exhausted."""
    versions: AgentVersions | None = None
    """The agent's deployed versions and flag (``accord.graphs.versioning``): each call runs
    the version its thread is pinned to, or the fallback when the agent is switched off."""
    blocked: Exception | None = None
    """Set for a call the agent may not make (switched off): its fallback answers."""
    guards: Any = None
    """The graph's rate limits and budgets (``accord.guardrails.enforce.Guards``), if any."""

    def handoff(self, state: Mapping[str, Any]) -> Handoff:
        """The envelope its sender stored for this agent, checked against the agent's spec;
        raises ``HandoffRejected`` (expired, corrupt, unknown version, invalid payload): the
        agent does not run and the engine dead-letters the handoff."""
        issuer = self.transitions.handoffs or HandoffIssuer({self.name: self.runner.spec.reads})
        task_id = state.get("active_task") or ""
        # the agent's visits of this request; a return from an approval continues a visit
        visit = sum(1 for e in state.get("audit") or ()
                    if e.get("kind") == "transition" and e.get("target") == self.name
                    and e.get("node") not in self.approval_nodes)
        task = (state.get("tasks") or {}).get(task_id, {})
        reviews = tuple(ReviewedAction.from_dict(r) for r in task.get("reviews") or ())
        return issuer.receive(self.name, self.runner.spec, state,
                              successors=tuple(self.runner.successors),
                              ledger=current_ledger(task_id, scope=f"{self.name}.{visit}"),
                              reviews=reviews)

    def _returned(self, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """The held actions this agent proposed for the active task, back from an approval."""
        pending = state.get("pending")
        if (isinstance(pending, dict) and pending.get("node") == self.name
                and pending.get("task_id") == (state.get("active_task") or "")):
            return pending
        return None

    @property
    def links(self) -> tuple[Link, ...]:
        return (Link(HopKind.PRIMARY, self.runner), *self.chain)

    async def __call__(self, state: dict[str, Any]) -> Command:
        if self.versions is not None:  # the version this thread runs, then :meth:`enter`
            return await run_versioned(self, self.versions, state)
        return await self.enter(state)

    async def enter(self, state: dict[str, Any]) -> Command:
        """One call of the node's agent as it is (its version chosen)."""
        returned = self._returned(state)
        if returned is not None:
            decided = {r["key"] for r in returned.get("reviews") or ()}
            waiting = [a for a in returned["actions"] if a["idempotency_key"] not in decided]
            if waiting:  # held calls of the turn that another approval node decides
                node = waiting[0]["approval_node"]
                return self.transitions.command(self.name, state, Step(node, {
                    "pending": {**returned, "approval_node": node}}))
        handoff = self.handoff(state)
        call = self._call_context(handoff)
        token = CALL.set(call)
        try:
            command = await agent_step(self.name, self.runner.spec, handoff.task_id,
                                       self._walk(state, handoff, returned))
        finally:
            CALL.reset(token)
        return _noted(command, call.events)

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

    async def _walk(self, state: dict[str, Any], handoff: Handoff,
                    returned: dict[str, Any] | None) -> Command:
        """The task along the agent's links: the agent, then its fallback chain."""
        links = self.links
        hops: list[Hop] = []
        audit: list[dict[str, Any]] = []
        recorded = False
        start, transcript = 0, ()
        if returned is not None:  # the decisions go to the hop whose agent proposed the actions
            start = next((i for i, link in enumerate(links) if link.runner is not None
                          and link.agent == returned.get("agent")), 0)
            transcript = tuple(returned.get("transcript") or ())
        elif handoff.ledger is not None and any(k.kind is HopKind.HUMAN for k in self.chain):
            # a resume re-runs the node: the hops tried before the person was asked are not
            # tried again, and their events are the ones recorded then
            recorded, saved = await handoff.ledger.arecall(self._chain_key(state, handoff))
            if recorded:
                hops = [Hop.from_dict(h) for h in saved["hops"]]
                audit = list(saved["audit"])
        error: BaseException | None = None
        for index in range(max(start, len(hops)), len(links)):
            link = links[index]
            if link.kind is HopKind.HUMAN:
                if handoff.ledger is not None and not recorded:
                    await handoff.ledger.arecord(self._chain_key(state, handoff), CHAIN_TOOL, {
                        "hops": [h.as_dict() for h in hops], "audit": audit})
                    recorded = True
                tried = self._ask_human(index, handoff, hops)
            else:
                tried = await self._try(link, index, handoff, transcript if index == start else ())
            audit.extend(tried.audit)
            hops.append(tried.hop)
            if tried.error is None and tried.result is not None:
                return self.settle(state, tried.result, link.runner, audit, hops)
            error = tried.error
            if isinstance(error, GuardStop):
                _note_stop(error)
                if isinstance(error, PermissionDenied):  # recorded, not applied; no fallback
                    return self._stopped(state, error, link.runner or self.runner, audit)
            if index + 1 < len(links):
                audit.append(self._fallback_event(handoff, tried.hop, links[index + 1], index + 1))
        assert error is not None
        if isinstance(error, GuardStop):  # a limit or budget stopped every hop: a clear stop
            return self._stopped(state, error, self.runner, audit)
        return await self._exhausted(state, handoff, error, hops, audit)

    def _chain_key(self, state: Mapping[str, Any], handoff: Handoff) -> str:
        """The ledger key of this visit's chain (the hop count tells a later visit of the same
        task to this node from a re-run of this one)."""
        return f"{handoff.task_id}:{self.name}:{state.get('hops') or 0}:chain"

    def _fallback_event(self, handoff: Handoff, failed: Hop, to: Link, index: int) -> dict[str, Any]:
        return audit_event(AuditKind.FALLBACK, node=self.name, agent=failed.agent,
                           model=failed.model, fallback=to.agent, fallback_model=to.model,
                           to=to.kind.value, hop=index, task_id=handoff.task_id,
                           cause=failed.cause.value if failed.cause else None, error=failed.error)

    async def _try(self, link: Link, index: int, handoff: Handoff,
                   transcript: tuple[dict[str, Any], ...] = ()) -> _Tried:
        """One hop by an agent: its breaker, its bound, its retries."""
        assert link.runner is not None
        runner = link.runner
        spec = runner.spec
        model = runner.model_name
        gate = CallGate.open(node=self.name, agent=spec.id, task_id=handoff.task_id,
                             spec=spec.breaker, model=model,
                             of_agent=link.kind is not HopKind.MODEL)
        timeout = spec.step_timeout
        result: AgentResult | None = None
        error: BaseException | None = None
        with attempts(spec.id, model) as log:
            try:
                if self.blocked is not None and link.kind is HopKind.PRIMARY:
                    raise self.blocked  # switched off: on along the chain, no call made
                if gate is not None:
                    await gate.enter()  # an open breaker: on along the chain, no call made
                if self.guards is not None and CALL.get() is not None:
                    await self.guards.admit_agent(CALL.get(), spec)
                bound = asyncio.timeout(timeout)
                try:
                    async with bound:  # no extra task, unlike wait_for
                        result = await self._run(runner, handoff, log, transcript)
                except TimeoutError:
                    if bound.expired():
                        raise TimeoutError(f"{spec.id} took longer than {timeout:g}s") from None
                    raise
                if gate is not None:
                    await gate.exit(ok=True)
            except PASS_THROUGH:
                raise
            except Exception as exc:
                error = exc
                if gate is not None and not isinstance(exc, BreakerOpen | BreakerTableCorrupt
                                                   | AgentDisabled | GuardStop):
                    await gate.exit(ok=False, error=exc)
        events = [*(gate.events if gate is not None else ()),
                  *(audit_event(AuditKind.ATTEMPT_FAILED, node=self.name,
                                task_id=handoff.task_id, **a.as_dict()) for a in log.failures)]
        hop = Hop(index, link.kind, spec.id, model,
                  cause_of(error) if error is not None else None,
                  _error_text(error) if error is not None else None,
                  log.calls, len(log.failures))
        return _Tried(hop, result, error, events)

    @staticmethod
    async def _run(runner: AgentRunner, handoff: Handoff, log: AttemptLog,
                   transcript: tuple[dict[str, Any], ...] = ()) -> AgentResult:
        """The agent's call; a rule-based agent's call is retried on transient errors (an LLM
        agent retries each model call instead). ``transcript`` continues an LLM agent's loop
        with the decisions on the calls it held."""
        if runner.spec.kind != "rules":
            return await runner.arun(handoff, transcript=transcript)
        retry = runner.spec.retry
        for number in range(1, retry.max_attempts + 1):
            try:
                result = await runner.arun(handoff)
            except PASS_THROUGH:
                raise
            except Exception as exc:
                again = number < retry.max_attempts and is_transient(exc)
                wait = calculate_delay(number - 1, backoff_factor=retry.backoff_factor,
                                       initial_delay=retry.initial_interval, max_delay=60.0,
                                       jitter=True) if again else None
                log.failed(number, exc, retried=again, wait=wait)
                if not again:
                    raise
                if wait:
                    await asyncio.sleep(wait)
                continue
            log.ok(number)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _ask_human(self, index: int, handoff: Handoff, hops: list[Hop]) -> _Tried:
        """The person's hop: an interrupt a human answers (``accord resume``)."""
        last = hops[-1] if hops else None
        reason = f"{last.cause.value}: {last.error}" if last and last.cause else "escalated"
        answer = ask_human(EscalationRequest(
            node=self.name, agent=self.runner.spec.id, task_id=handoff.task_id,
            query=handoff.query, reason=reason, hops=[h.as_dict() for h in hops]))
        event = audit_event(AuditKind.HUMAN_DECISION, node=self.name, task_id=handoff.task_id,
                            agent=HUMAN, decision=answer.decision, by=answer.by or "unknown",
                            reason=answer.reason, reply=answer.reply)
        if answer.decision == "reply":
            hop = Hop(index, HopKind.HUMAN, HUMAN, calls=1)
            return _Tried(hop, AgentResult(answer.reply or ""), None, [event])
        declined = HumanDeclined(f"{answer.by or 'the person asked'} declined: {answer.reason}")
        hop = Hop(index, HopKind.HUMAN, HUMAN, None, cause_of(declined), _error_text(declined),
                  1, 1)
        return _Tried(hop, None, declined, [event])

    async def _exhausted(self, state: Mapping[str, Any], handoff: Handoff, error: BaseException,
                         hops: list[Hop], audit: list[dict[str, Any]]) -> Command:
        """Every hop failed: hand the task to :func:`task_exhausted`, then fail it."""
        try:
            checkpoint = get_config().get("configurable", {}).get("checkpoint_id")
        except RuntimeError:
            checkpoint = None
        spec = self.runner.spec
        failures = tuple({k: v for k, v in e.items() if k not in ("id", "kind", "at")}
                         for e in audit if e.get("kind") == AuditKind.ATTEMPT_FAILED)
        await task_exhausted(Exhaustion(
            thread_id=handoff.thread_id, task_id=handoff.task_id, node=self.name, agent=spec.id,
            version=spec.version, query=handoff.query, context=dict(handoff.context),
            hops=tuple(hops), error=_error_text(error), checkpoint_id=checkpoint,
            attempts=failures), self.on_exhausted)
        # the task is kept as a dead letter, stored with this step (``accord dlq``)
        audit = [*audit, dead_letter_event(
            node=self.name, error=error, agent=spec.id, agent_version=spec.version,
            task_id=handoff.task_id, payload={"query": handoff.query, "hops": [
                h.as_dict() for h in hops]})]
        return self._failed(state, error, hops, audit)

    def settle(self, state: Mapping[str, Any], result: AgentResult, runner: AgentRunner | None,
               audit: list[dict[str, Any]] | None = None, hops: list[Hop] | None = None) -> Command:
        """The step for a result of ``runner`` (None: a person's reply), after ``audit``."""
        spec = runner.spec if runner is not None else self.runner.spec
        agent = spec.id if runner is not None else HUMAN
        task_id = state.get("active_task") or ""
        context = state.get("context") or {}
        audit = list(audit or [])
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
                                "handoff_to": result.handoff_to,
                                "hops": [h.as_dict() for h in hops or ()],
                                HANDOFFS_FIELD: None}},  # its envelope is used up
            "outputs": {self.name: {"agent": agent, "version": spec.version,
                                    "kind": spec.kind if runner is not None else HUMAN,
                                    "status": result.status, "reply": result.reply,
                                    "output": result.output}},
            "audit": audit,
            "errors": errors,
        }
        if writes:
            update["context"] = writes
        if result.reply:
            update["messages"] = [AIMessage(result.reply, name=self.name)]
        if self._returned(state) is not None:
            update["pending"] = None  # the decisions reached the agent
        if result.held:
            first = result.held[0]
            update["pending"] = {
                "approval_node": first.approval_node, "agent": spec.id, "node": self.name,
                "task_id": task_id, "actions": [a.as_dict() for a in result.held],
                "reviews": [], "transcript": list(result.transcript),
            }
            return self.transitions.command(self.name, state, Step(first.approval_node, update))
        if result.handoff_to:
            return self._hand_off(state, result.handoff_to, update)
        return self.transitions.command(self.name, state, Step(self._next_after(result), update))

    def _next_after(self, result: AgentResult) -> str:
        """Where a result that names no successor goes: back to the router; with no router edge,
        a completed task ends the run when the agent may end it, else its first declared target."""
        if (result.status == "completed" and self.return_to != self.transitions.router
                and self.transitions.table.allows(self.name, END)):
            return END
        return self.return_to

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

    def _stopped(self, state: Mapping[str, Any], error: GuardStop, runner: AgentRunner,
                 audit: list[dict[str, Any]] | None = None) -> Command:
        """A guard stopped the task (a permission, a rate limit, a spent budget): it fails with
        the guard's message to the user, and the run goes on to its end (no error path: the
        refusal is the answer)."""
        task_id = state.get("active_task") or ""
        message = str(error)
        update: dict[str, Any] = {
            "tasks": {task_id: {"status": TaskStatus.FAILED.value, "updated_at": utcnow(),
                                "result": message, HANDOFFS_FIELD: None}},
            "messages": [AIMessage(f"Sorry, I can't do that: {message}.", name=self.name)],
            "errors": [{"at": utcnow(), "node": self.name, "agent": runner.spec.id,
                        "error": f"{type(error).__name__}: {message}"}],
            "audit": list(audit or []),
        }
        if self._returned(state) is not None:
            update["pending"] = None
        return self.transitions.command(self.name, state, Step(self.return_to, update))

    def _failed(self, state: Mapping[str, Any], error: BaseException, hops: list[Hop],
                audit: list[dict[str, Any]]) -> Command:
        """The chain is exhausted: the task failed with the cause; the run takes the error path."""
        task_id = state.get("active_task") or ""
        message = _error_text(error)
        last = hops[-1] if hops else None
        agent = last.agent if last is not None else self.runner.spec.id
        cause = last.cause.value if last is not None and last.cause else None
        target = self.transitions.error_node or self.return_to
        update: dict[str, Any] = {
            "tasks": {task_id: {"status": TaskStatus.FAILED.value, "updated_at": utcnow(),
                                "result": message, "hops": [h.as_dict() for h in hops],
                                HANDOFFS_FIELD: None}},
            "errors": [{"at": utcnow(), "node": self.name, "agent": agent, "error": message}],
            "audit": [*audit, audit_event(AuditKind.AGENT_FAILED, node=self.name, agent=agent,
                                          task_id=task_id, error=message, cause=cause,
                                          hops=len(hops))],
        }
        if self._returned(state) is not None:
            update["pending"] = None
        return self.transitions.command(self.name, state, Step(target, update))


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


__all__ = ["CHAIN_TOOL", "PASS_THROUGH", "AgentNode", "Link"]
