"""Runs one agent on a handoff: LLM agents through ``create_agent``, rule-based ones directly."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph._internal._constants import CONFIG_KEY_DURABILITY
from pydantic import ValidationError

from accord.agents.actions import IDEMPOTENCY_ARG, ToolBox, idempotency_key
from accord.agents.handoff import HANDOFF_TARGET, AgentResult, Handoff, ProposedAction, handoff_tool
from accord.agents.models import ModelResolver, is_transient
from accord.agents.spec import AgentSpec
from accord.guardrails.permissions import PermissionDenied
from accord.resilience import ProviderRetryMiddleware

PENDING_ARTIFACT = "accord_pending"

AGENTS_KEPT = 4
"""Compiled agent graphs an agent keeps (one per model it was given: per event loop for a
model the resolver builds)."""


class ToolNotDeclared(PermissionDenied):
    """An agent called a tool its spec does not declare (recorded, not applied)."""


def action_key(handoff: Handoff, tool: str, args: dict[str, Any]) -> str:
    """Idempotency key of one tool call: same thread, task, tool and arguments -> same key."""
    canonical = json.dumps(args, sort_keys=True, default=str)
    return idempotency_key(handoff.thread_id, handoff.task_id, tool, canonical)


class ToolCalls:
    """The tools a rule-based agent may use, gated by approval policy, with a call log."""

    def __init__(self, toolbox: ToolBox, allowed: tuple[str, ...], handoff: Handoff) -> None:
        self._toolbox = toolbox
        self._allowed = allowed
        self._handoff = handoff
        self.log: list[dict[str, Any]] = []

    def gate(self, tool: str, args: dict[str, Any], *, why: str = "") -> ProposedAction | None:
        """The action to hold for approval, or ``None`` when the call may run now."""
        self._check(tool)
        return self._toolbox.gate(tool, args, key=action_key(self._handoff, tool, args), reason=why)

    def __call__(self, tool: str, **args: Any) -> Any:
        """Run a tool that needs no approval (side effects keyed for exactly-once)."""
        self._check(tool)
        key = action_key(self._handoff, tool, args)
        result = self._toolbox.run(tool, args, key=key, ledger=self._handoff.ledger)
        self.log.append({"tool": tool, "args": args, "result": result})
        return result

    def _check(self, tool: str) -> None:
        if tool not in self._allowed:
            raise ToolNotDeclared(f"tool {tool!r} is not declared by this agent")


_HANDOFF: ContextVar[Handoff] = ContextVar("accord_handoff")
"""The handoff of the agent call in progress (the compiled agent is shared between calls)."""


class ApprovalGateMiddleware(AgentMiddleware):
    """Holds back tool calls that a declared policy sends to a human.

    The held call is answered with a ``ToolMessage`` saying it awaits approval; the proposed
    action travels in the message artifact so the workflow can route to the approval node.
    Calls that may run get an idempotency key, so a re-run after a crash is a no-op.
    """

    def __init__(self, toolbox: ToolBox) -> None:
        super().__init__()
        self.toolbox = toolbox

    def _prepare(self, request: Any) -> tuple[Any, str, ToolMessage | None]:
        """The request to run, its key, and an answer when a policy holds the call.

        A held call is answered "held for approval" (the action in the artifact); a call
        already in the ledger is answered with its recorded result (a re-run after a crash,
        looked up by the caller); any other call runs, with the idempotency key when the tool
        takes one.
        """
        handoff = _HANDOFF.get()
        call = request.tool_call
        args = {k: v for k, v in call["args"].items() if k != IDEMPOTENCY_ARG}
        key = action_key(handoff, call["name"], args)
        action = self.toolbox.gate(call["name"], args, key=key)
        if action is not None:
            held = ToolMessage(
                content=f"{call['name']} is held for human approval ({action.reason}).",
                tool_call_id=call["id"],
                name=call["name"],
                artifact={PENDING_ARTIFACT: action.as_dict()},
            )
            return request, key, held
        if self.toolbox.accepts_key(call["name"]):
            request = request.override(tool_call={**call, "args": {**args, IDEMPOTENCY_ARG: key}})
        return request, key, None

    @staticmethod
    def _recordable(result: Any) -> bool:
        return isinstance(result, ToolMessage) and result.status != "error"

    @staticmethod
    def _recorded(request: Any, content: Any) -> ToolMessage:
        call = request.tool_call
        return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"])

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        if request.tool is not None and HANDOFF_TARGET in (request.tool.metadata or {}):
            return await handler(request)  # a handoff changes nothing: no gate, no ledger
        request, key, answer = self._prepare(request)
        if answer is None and (ledger := _HANDOFF.get().ledger) is not None:
            found, content = await ledger.arecall(key)
            if found:
                answer = self._recorded(request, content)
        if answer is not None:
            return answer
        if (ledger := _HANDOFF.get().ledger) is not None and \
                not self.toolbox.reads_only(request.tool_call["name"]):
            await ledger.asettle()  # what the agent read is written before it acts
        result = await handler(request)
        if (ledger := _HANDOFF.get().ledger) is not None and self._recordable(result):
            name = request.tool_call["name"]
            await ledger.arecord(key, name, result.content,
                                 repeatable=self.toolbox.repeatable(name))
        return result


class AgentRunner:
    """Runs one :class:`AgentSpec`; the same interface for LLM and rule-based agents."""

    def __init__(
        self,
        spec: AgentSpec,
        toolbox: ToolBox,
        models: ModelResolver,
        middleware: Sequence[AgentMiddleware] = (),
        *,
        successors: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.successors = dict(successors or {})
        """Nodes the agent may hand its task to (node -> what it is for): an LLM agent gets a
        ``transfer_to_<node>`` tool for each."""
        self.toolbox = toolbox
        self.models = models
        self.middleware = tuple(middleware)
        """Extra langchain middleware for LLM agents (guardrails, PII, call limits)."""
        self.toolbox.subset(spec.tools)  # fail at build time on an unknown tool
        self._compiled: dict[int, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def _validate_input(self, handoff: Handoff) -> None:
        if self.spec.input_schema is not None:
            self.spec.input_schema.model_validate({"query": handoff.query, **handoff.context})

    def _validate_output(self, result: AgentResult) -> AgentResult:
        if self.spec.output_schema is not None and result.output is not None:
            try:
                self.spec.output_schema.model_validate(result.output)
            except ValidationError as exc:
                raise ValueError(f"agent {self.spec.id} returned invalid output: {exc}") from exc
        return result

    # rule-based -----------------------------------------------------------------------
    def _run_rules(self, handoff: Handoff) -> AgentResult:
        calls = ToolCalls(self.toolbox, self.spec.tools, handoff)
        result = self.spec.handler(handoff, calls)
        if not isinstance(result, AgentResult):
            raise TypeError(f"handler of {self.spec.id} returned {type(result).__name__}")
        if calls.log and not result.tool_calls:
            result = AgentResult(**{**result.__dict__, "tool_calls": tuple(calls.log)})
        return result

    # LLM ----------------------------------------------------------------------------------
    def _agent(self) -> Any:
        """The agent's ``create_agent`` graph for the model the resolver gives now (a model it
        builds has HTTP connections of the running event loop; an injected one is shared), built
        once per model.

        It runs inside the workflow's node without a checkpointer of its own: the node is the
        unit of durability, so the inner tool loop adds no checkpoint writes.
        """
        model = self.models(self.spec.model or "small")
        with self._lock:
            found = self._compiled.get(id(model))
            if found is None or found[0] is not model:
                found = (model, self._build_agent(model))
                self._compiled[id(model)] = found
                while len(self._compiled) > AGENTS_KEPT:  # models of loops long gone
                    del self._compiled[next(iter(self._compiled))]
            return found[1]

    def _build_agent(self, model: Any) -> Any:
        return create_agent(
            model=model,
            tools=[*self.toolbox.subset(self.spec.tools),
                   *(handoff_tool(n, d) for n, d in self.successors.items())],
            system_prompt=self.spec.system_prompt or self.spec.purpose,
            checkpointer=False,
            middleware=[
                *self.middleware,
                ApprovalGateMiddleware(self.toolbox),
                ProviderRetryMiddleware(
                    max_retries=self.spec.retry.max_attempts - 1,
                    retry_on=is_transient,  # a 4xx or a validation error fails the same again
                    initial_delay=self.spec.retry.initial_interval,
                    backoff_factor=self.spec.retry.backoff_factor,
                    on_failure="error",
                ),
            ],
            response_format=self.spec.output_schema,
            name=self.spec.id,
        )

    def _llm_result(self, state: dict[str, Any]) -> AgentResult:
        messages = state["messages"]
        action: ProposedAction | None = None
        handoff_to: str | None = None
        tool_calls: list[dict[str, Any]] = []
        for message in messages:
            if isinstance(message, ToolMessage):
                artifact = message.artifact if isinstance(message.artifact, dict) else {}
                if PENDING_ARTIFACT in artifact:
                    action = ProposedAction(**artifact[PENDING_ARTIFACT])
                if artifact.get(HANDOFF_TARGET) in self.successors:
                    handoff_to = artifact[HANDOFF_TARGET]
                call = {"tool": message.name, "result": message.content}
                if message.status == "error":
                    call["status"] = "error"
                tool_calls.append(call)
        final = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        reply = final.text if final is not None else ""
        structured = state.get("structured_response")
        output = structured.model_dump() if hasattr(structured, "model_dump") else structured
        if action is not None:
            handoff_to = None  # the approval decides first
        return AgentResult(
            reply=reply,
            status="needs_approval" if action else "handoff" if handoff_to else "completed",
            output=output,
            action=action,
            handoff_to=handoff_to,
            tool_calls=tuple(tool_calls),
        )

    # public -------------------------------------------------------------------------------
    async def arun(self, handoff: Handoff) -> AgentResult:
        """Run the agent on a handoff (rule handlers run in a worker thread)."""
        self._validate_input(handoff)
        if self.spec.kind == "rules":
            return self._validate_output(await asyncio.to_thread(self._run_rules, handoff))
        agent = self._agent()
        token = _HANDOFF.set(handoff)
        try:
            # The inner loop gets a durability of its own: under a parent run at
            # durability="sync" a checkpointer-less graph that inherits it fails on
            # `_put_checkpoint_fut` (see tests/engine/test_inner_durability.py).
            state = await agent.ainvoke({"messages": [HumanMessage(handoff.render())]},
                                        {"configurable": {CONFIG_KEY_DURABILITY: "exit"}})
        finally:
            _HANDOFF.reset(token)
        return self._validate_output(self._llm_result(state))
