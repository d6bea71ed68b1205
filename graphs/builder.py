"""Workflow: agents + router + approval nodes + transition table -> a checked ``StateGraph``.

Builder -> validate -> compile. The transition table is the single source of truth: each node
is added with ``destinations`` equal to its allowed targets, so the compiled graph's drawing
(``get_graph().draw_mermaid()``, Studio) shows exactly the table.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from accord.agents.actions import ApprovalPolicy, ToolBox
from accord.agents.models import ModelResolver, llm_available
from accord.agents.registry import AgentRegistry
from accord.agents.runner import AgentRunner
from accord.agents.spec import AgentSpec
from accord.engine.graph import AccordGraph, EngineSettings
from accord.graphs.agent_node import AgentNode, Link
from accord.graphs.approval import ApprovalNode
from accord.graphs.errors import NodeContractError, WorkflowBuildError
from accord.graphs.handoffs import HandoffIssuer
from accord.graphs.router import Router, router_node
from accord.graphs.state import CONTEXT_MERGES, InputState, WorkflowState
from accord.graphs.transitions import Step, Transitions, TransitionTable
from accord.graphs.versioning import AgentVersions
from accord.guardrails.base import InputGuardrail, MaxInputLength
from accord.guardrails.cache import ModelCallCache
from accord.guardrails.enforce import Guards, guards_for
from accord.guardrails.limits import Limits
from accord.guardrails.model_guard import ModelCallGuard
from accord.guardrails.tool_guard import ToolPermissionGuard
from accord.resilience.fallback import ExhaustedHook, HopKind, chain_of

NodeFn = Callable[[dict[str, Any]], Step] | Callable[[dict[str, Any]], Awaitable[Step]]


_WRAP_HOOKS = (("wrap_model_call", "awrap_model_call"), ("wrap_tool_call", "awrap_tool_call"))


def _check_async(node: str, middleware: Any) -> None:
    """accord runs every agent asynchronously: a wrap hook needs its async version."""
    from langchain.agents.middleware import AgentMiddleware

    for sync, async_ in _WRAP_HOOKS:
        cls = type(middleware)
        has_sync = getattr(cls, sync, None) is not getattr(AgentMiddleware, sync, None)
        has_async = getattr(cls, async_, None) is not getattr(AgentMiddleware, async_, None)
        if has_sync and not has_async:
            raise WorkflowBuildError(
                f"middleware {cls.__name__} of agent {node!r} defines {sync} but not {async_}; "
                f"accord runs agents asynchronously on every entry point: define {async_} too",
                node=node,
            )


class Workflow:
    """Builds a checked LangGraph ``StateGraph`` from agents and a transition table."""

    def __init__(
        self,
        name: str,
        *,
        router: Router,
        router_name: str = "router",
        max_hops: int | None = None,
        error_node: str | None = None,
        tools: Sequence[Any] = (),
        approvals: Sequence[ApprovalPolicy] = (),
        models: ModelResolver | None = None,
        registry: AgentRegistry | None = None,
        input_guardrails: Sequence[InputGuardrail] = (MaxInputLength(),),
        context_merges: Mapping[str, str] | None = None,
        context_ttl: timedelta | None = None,
        lock_wait: float = 0.0,
        handoff_ttl: timedelta | float | None = None,
        use_llm: bool | None = None,
        on_exhausted: ExhaustedHook | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.router = router
        self.router_name = router_name
        self.max_hops = max_hops
        self.error_node = error_node
        self.toolbox = ToolBox(tools, approvals)
        self.models = models or ModelResolver()
        self.registry = registry or AgentRegistry()
        self.input_guardrails = tuple(input_guardrails)
        self.context_merges = dict(context_merges or {})
        """Shared-context key -> merge function name (see ``CONTEXT_MERGES``) for concurrent writers."""
        self.context_ttl = context_ttl
        """Shared-context entries older than this expire when the next request starts."""
        self.lock_wait = lock_wait
        self.limits = limits
        """Rate limits and cost budgets (``accord.guardrails.Limits``), with agents' own."""
        """Seconds a run waits for a thread another run holds, before ``ThreadBusy``."""
        ttl = handoff_ttl.total_seconds() if isinstance(handoff_ttl, timedelta) else handoff_ttl
        if ttl is not None and ttl <= 0:
            raise WorkflowBuildError(f"handoff_ttl must be positive, got {handoff_ttl!r}")
        self.handoff_ttl = ttl
        """Seconds a handoff envelope may wait before its agent runs it (None: no expiry); an
        expired one is not run and is dead-lettered."""
        self.use_llm = llm_available() if use_llm is None else use_llm
        """Whether LLM agents with a rule-based twin run (else their twins run in their place);
        by default, whether a model provider is configured (``OPENAI_API_KEY``)."""
        self.on_exhausted = on_exhausted
        """Called with an ``accord.resilience.Exhaustion`` when a task's whole fallback chain
        failed (after ``accord.resilience.task_exhausted`` logs it)."""
        self.source: str | None = None
        """How the workflow was loaded (a catalog name or ``module:factory``), when known:
        the thread index records it, so the CLI can load the graph of any thread."""
        self._agents: dict[str, AgentSpec] = {}
        self._middleware: dict[str, tuple[Any, ...]] = {}
        self._approvals: dict[str, str | None] = {}
        self._nodes: dict[str, NodeFn] = {}
        self._table: dict[str, Sequence[str]] = {}

    # declaration ---------------------------------------------------------------------------
    def agent(
        self, spec: AgentSpec, *, node: str | None = None, middleware: Sequence[Any] = ()
    ) -> Workflow:
        """Add an agent as a node (named after the spec unless ``node`` is given).

        ``middleware`` is langchain ``AgentMiddleware`` for an LLM agent's own loop (for
        example ``PIIMiddleware`` or ``ToolCallLimitMiddleware``); it runs before accord's gate.
        An LLM agent with a rule-based twin (``rules``) falls back to it, and is replaced by it
        when the workflow runs without LLMs (``use_llm``).
        """
        name = node or spec.id
        self._check_new(name)
        for item in middleware:
            _check_async(name, item)
        twin = spec.twin()
        if twin is not None:
            if twin.id not in self.registry:
                self.registry.register(twin)
            if not self.use_llm:
                spec = twin
            elif not spec.fallback:
                spec = spec.model_copy(update={"fallback": chain_of(twin.id)})
        if spec.id not in self.registry:
            self.registry.register(spec)
        self._agents[name] = spec
        self._middleware[name] = tuple(middleware)
        return self

    def approval(self, name: str, *, return_to: str | None = None) -> Workflow:
        """Add an approval node. After a decision the outcome goes back to the agent that
        proposed the action (an edge accord adds to the table); ``return_to`` (by default the
        approval's first declared target) is where it goes when no agent waits for it."""
        self._check_new(name)
        self._approvals[name] = return_to
        return self

    def node(self, name: str, fn: NodeFn) -> Workflow:
        """Add a plain node: ``fn(state) -> Step``, sync or async (its transition is checked
        like any other; a sync one runs in a worker thread)."""
        self._check_new(name)
        self._nodes[name] = fn
        return self

    def transitions(self, table: Mapping[str, Sequence[str]]) -> Workflow:
        """Declare the allowed transitions, ``from -> [targets]`` (``"END"`` ends the run)."""
        self._table = dict(table)
        return self

    def _check_new(self, name: str) -> None:
        if name == self.router_name or name in self._agents or name in self._approvals or name in self._nodes:
            raise WorkflowBuildError(f"node {name!r} is declared twice", node=name)

    # validation ------------------------------------------------------------------------------
    def agent_nodes(self) -> dict[str, AgentSpec]:
        """The agent nodes and the spec each declares (node -> spec)."""
        return dict(self._agents)

    def node_kinds(self) -> dict[str, str]:
        kinds = {self.router_name: "router"}
        kinds.update({n: "agent" for n in self._agents})
        kinds.update({n: "approval" for n in self._approvals})
        kinds.update({n: "node" for n in self._nodes})
        return kinds

    @property
    def table(self) -> TransitionTable:
        """The effective transition table: the declared edges, the return path (an approval
        node back to the agents that send it actions), the error path, and the finish path (a
        node that returns to the router may end the run once its task is finished)."""
        return (TransitionTable(self._table).with_return_path(tuple(self._approvals))
                .with_error_path(self.error_node).with_finish_path(self.router_name))

    def validate(self) -> TransitionTable:
        """Check the workflow; raises :class:`WorkflowBuildError` naming the node."""
        kinds = self.node_kinds()
        if self.error_node is not None and self.error_node not in kinds:
            raise WorkflowBuildError(f"error node {self.error_node!r} is not a node", node=self.error_node)
        declared = TransitionTable(self._table)
        declared.validate(nodes=kinds, entry=self.router_name, max_hops=self.max_hops,
                          error_node=self.error_node)
        table = self.table
        for target in self.router.targets():
            if not table.allows(self.router_name, target):
                raise WorkflowBuildError(
                    f"router rule targets {target!r}, which the router may not go to", node=target
                )
        for name, declared in self._agents.items():
            for spec in (declared, *self.registry.versions(declared.id)):
                for hop in spec.fallback:
                    if hop.agent is not None and hop.agent not in self.registry:
                        raise WorkflowBuildError(
                            f"agent {name!r} ({spec.version}) falls back to unknown agent "
                            f"{hop.agent!r}", node=name)
                    if hop.model is not None and spec.kind != "llm":
                        raise WorkflowBuildError(
                            f"rule-based agent {name!r} cannot fall back to model {hop.model!r}; "
                            "name another agent or a human", node=name)
        for key, how in self.context_merges.items():
            if how not in CONTEXT_MERGES:
                raise WorkflowBuildError(
                    f"context key {key!r} declares unknown merge {how!r}; "
                    f"choose one of {', '.join(sorted(CONTEXT_MERGES))}"
                )
        for policy in self.toolbox.policies:
            if policy.approval_node not in self._approvals:
                raise WorkflowBuildError(
                    f"approval policy for {policy.tool!r} names unknown approval node "
                    f"{policy.approval_node!r}",
                    node=policy.approval_node,
                )
        self.registry.owners()
        guards = guards_for(self.limits, self._agents.values())
        if guards is not None:
            specs = [*self._agents.values(), *(self.registry.get(h.agent)
                                               for s in self._agents.values()
                                               for h in s.fallback if h.agent)]
            guards.validate(specs, self.models.resolve_name)
        return table

    # build -------------------------------------------------------------------------------------
    def build(self) -> StateGraph:
        table = self.validate()
        issuer = HandoffIssuer({n: s.reads for n, s in self._agents.items()}, self.handoff_ttl)
        moves = Transitions(table, self.max_hops, self.error_node, self.router_name,
                            self.context_merges, issuer)
        graph = StateGraph(WorkflowState, input_schema=InputState)
        if getattr(self, "_guards", None) is None:  # one set of buckets per workflow
            self._guards = guards_for(self.limits, self._agents.values())
        guards = self._guards

        def dests(name: str) -> tuple[str, ...]:
            return table.targets(name)

        graph.add_node(self.router_name,
                       router_node(self.router_name, self.router, moves, self.models,
                                   self.context_ttl),
                       destinations=dests(self.router_name))
        for name, spec in self._agents.items():
            successors = self._successors(name)
            backup = self._backup(spec)
            runner = AgentRunner(spec, self.toolbox, self.models,
                                 (*self._middleware[name],
                                  *self._guard_middleware(spec, guards, backup)),
                                 successors=successors)
            # Model retries run inside the agent (ModelRetryMiddleware); timeouts and the
            # fallback chain run inside the node, so the drawing holds exactly the declared edges.
            node = AgentNode(name, runner, moves, self._return_to(name),
                             self._chain(spec, runner, successors, guards),
                             delegates=not successors and self.router_name in dests(name),
                             on_exhausted=self.on_exhausted,
                             approval_nodes=frozenset(self._approvals),
                             versions=self._versions(name, runner, successors, guards),
                             guards=guards)
            graph.add_node(name, node, destinations=dests(name))
        for name, return_to in self._approvals.items():
            approval = ApprovalNode(name, self.toolbox, moves, return_to or self._return_to(name))
            graph.add_node(name, approval, destinations=dests(name))
        for name, fn in self._nodes.items():
            graph.add_node(name, self._plain(name, fn, moves), destinations=dests(name))
        graph.add_edge(START, self.router_name)
        return graph

    def _backup(self, spec: AgentSpec) -> AgentSpec | None:
        """The first agent of a spec's fallback chain, if any."""
        hop = next((h for h in spec.fallback if h.agent), None)
        return self.registry.get(hop.agent) if hop is not None else None

    def _chain(self, spec: AgentSpec, runner: AgentRunner, successors: dict[str, str],
               guards: Guards | None = None) -> tuple[Link, ...]:
        """The links of an agent's fallback chain, in order."""
        links: list[Link] = []
        for hop in spec.fallback:
            if hop.kind is HopKind.MODEL:
                links.append(Link(HopKind.MODEL, runner.on_model(hop.model or "")))
            elif hop.kind is HopKind.AGENT:
                other = self.registry.get(hop.agent or "")
                links.append(Link(HopKind.AGENT, AgentRunner(
                    other, self.toolbox, self.models,
                    self._guard_middleware(other, guards, None), successors=successors)))
            else:
                links.append(Link(HopKind.HUMAN))
        return tuple(links)

    def _versions(self, name: str, runner: AgentRunner, successors: dict[str, str],
                  guards: Guards | None = None) -> AgentVersions:
        """Every registered version of the node's agent, each with its fallback chain: a thread
        runs the one it is pinned to, a canary's share of new threads the canary."""
        spec = runner.spec
        runners = {spec.version: runner}
        chains = {spec.version: self._chain(spec, runner, successors, guards)}
        for other in self.registry.versions(spec.id):
            if other.version in runners:
                continue
            runners[other.version] = AgentRunner(
                other, self.toolbox, self.models,
                (*self._middleware[name],
                 *self._guard_middleware(other, guards, self._backup(other))),
                successors=successors)
            chains[other.version] = self._chain(other, runners[other.version], successors, guards)
        return AgentVersions(spec.id, spec.version, runners, chains)

    def _guard_middleware(self, spec: AgentSpec, guards: Guards | None,
                          fallback: AgentSpec | None) -> tuple[Any, ...]:
        """accord's guards in an LLM agent's own loop: its declared tools and whose data they
        show, then the request cache, then the rate limits and budgets of its model calls."""
        if spec.kind != "llm":
            return ()
        found: list[Any] = [ToolPermissionGuard(spec.id, spec.tools)]
        cache = self.limits.cache if self.limits is not None else None
        if cache is not None and cache.covers(spec.id):  # a hit spends no limit or budget
            found.append(ModelCallCache(spec, cache.ttl))
        if guards is not None:
            found.append(ModelCallGuard(spec, guards, self.models,
                                        has_rules=fallback is not None
                                        and fallback.kind == "rules"))
        return tuple(found)

    def _successors(self, name: str) -> dict[str, str]:
        """The nodes an agent may hand a task to directly (its declared targets other than the
        router, approval nodes, the error path and END), each with what it is for."""
        skip = {self.router_name, self.error_node, END, "END", *self._approvals}
        return {t: (self._agents[t].purpose if t in self._agents else t)
                for t in self._table.get(name, ()) if t not in skip}

    def _return_to(self, name: str) -> str:
        targets = self.table.targets(name)
        if self.router_name in targets:
            return self.router_name
        return next(t for t in targets if t not in (self.error_node, END))

    @staticmethod
    def _plain(name: str, fn: NodeFn, moves: Transitions) -> Callable[[dict[str, Any]], Awaitable[Command]]:
        async def run(state: dict[str, Any]) -> Command:
            if inspect.iscoroutinefunction(fn):
                step = await fn(state)
            else:
                step = await asyncio.to_thread(fn, state)
            if not isinstance(step, Step):
                raise NodeContractError(
                    f"node {name!r} returned {type(step).__name__}; a node added with "
                    "Workflow.node returns Step(goto=..., update={...})")
            return moves.command(name, state, step)

        run.__name__ = name
        return run

    def compile(self, checkpointer: Any = None, **kwargs: Any) -> AccordGraph:
        """Validate, build and compile into an :class:`~accord.engine.AccordGraph`.

        Pass accord's saver (``accord.checkpoints.open_saver``) to get the engine's guarantees;
        graphs exported to ``langgraph dev`` pass none (the server lends one).
        """
        compiled = self.build().compile(checkpointer=checkpointer, name=self.name, **kwargs)
        attrs = {k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"}
        engine = EngineSettings(input_guardrails=self.input_guardrails, lock_wait=self.lock_wait,
                                graph_ref=self.source, workflow=self,
                                guards=getattr(self, "_guards", None))
        return AccordGraph(engine=engine, **attrs)

    def mermaid(self) -> str:
        return self.compile().get_graph().draw_mermaid()


__all__ = ["END", "Workflow"]
