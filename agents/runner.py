"""Runs one agent on a handoff: LLM agents through ``create_agent``, rule-based ones directly."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, hook_config
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    messages_from_dict,
    messages_to_dict,
)
from langgraph._internal._constants import CONFIG_KEY_DURABILITY
from pydantic import ValidationError

from accord.agents.actions import IDEMPOTENCY_ARG, ToolBox, bound_tool, idempotency_key
from accord.agents.handoff import (
    HANDOFF_TARGET,
    AgentResult,
    Handoff,
    ProposedAction,
    ReviewedAction,
    handoff_tool,
)
from accord.agents.models import ModelResolver, is_transient
from accord.agents.spec import AgentSpec
from accord.errors import AccordError
from accord.guardrails.permissions import PermissionDenied
from accord.resilience import ProviderRetryMiddleware

PENDING_ARTIFACT = "accord_pending"

AGENTS_KEPT = 4
"""Compiled agent graphs an agent keeps (one per model it was given: per event loop for a
model the resolver builds)."""


class ToolNotDeclared(PermissionDenied):
    """An agent called a tool its spec does not declare (recorded, not applied)."""


class ActionRejected(AccordError):
    """A rule-based agent called a tool whose held call a reviewer rejected."""

    def __init__(self, review: ReviewedAction) -> None:
        self.review = review
        super().__init__(f"{review.tool} was rejected: {review.message or 'no reason given'}")


def action_key(handoff: Handoff, tool: str, args: dict[str, Any]) -> str:
    """Idempotency key of one tool call: same thread, task, tool and arguments -> same key."""
    canonical = json.dumps(args, sort_keys=True, default=str)
    return idempotency_key(handoff.thread_id, handoff.task_id, tool, canonical)


def tool_timed_out(tool: str, seconds: float) -> TimeoutError:
    return TimeoutError(f"tool {tool} gave no answer within {seconds:g}s")


def bounded(seconds: float | None, tool: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` in a thread of its own, waited for at most ``seconds`` (a tool that does not
    answer in time raises ``TimeoutError``; its thread is left to finish on its own)."""
    if seconds is None:
        return fn()
    pool = ThreadPoolExecutor(1, thread_name_prefix=f"accord-tool-{tool}")
    try:
        return pool.submit(contextvars.copy_context().run, fn).result(timeout=seconds)
    except FutureTimeout:
        raise tool_timed_out(tool, seconds) from None
    finally:
        pool.shutdown(wait=False)


class ToolCalls:
    """The tools a rule-based agent may use, gated by approval policy, with a call log; each
    call bounded by ``timeout`` seconds."""

    def __init__(self, toolbox: ToolBox, allowed: tuple[str, ...], handoff: Handoff,
                 timeout: float | None = None) -> None:
        self._toolbox = toolbox
        self._allowed = allowed
        self._handoff = handoff
        self._timeout = timeout
        self.log: list[dict[str, Any]] = []

    def gate(self, tool: str, args: dict[str, Any], *, why: str = "") -> ProposedAction | None:
        """The action to hold for approval, or ``None`` when the call may run now (no policy
        holds it, or a reviewer already decided on it: see :meth:`review`)."""
        self._check(tool)
        key = action_key(self._handoff, tool, args)
        if self._handoff.review(key=key) is not None:
            return None
        return self._toolbox.gate(tool, args, key=key, reason=why)

    def review(self, tool: str, args: dict[str, Any]) -> ReviewedAction | None:
        """The reviewer's decision on this call, once it was held and decided."""
        return self._handoff.review(key=action_key(self._handoff, tool, args))

    def __call__(self, tool: str, **args: Any) -> Any:
        """Run a tool that needs no approval (side effects keyed for exactly-once).

        A call a reviewer decided on is not run again: approved or edited, it returns the
        result of the run the approval made; answered (``respond``), the reviewer's message;
        rejected, it raises :class:`ActionRejected`.
        """
        self._check(tool)
        key = action_key(self._handoff, tool, args)
        review = self._handoff.review(key=key)
        if review is not None:
            return self._reviewed(review, args)
        result = bounded(self._timeout, tool, lambda: self._toolbox.run(
            tool, args, key=key, ledger=self._handoff.ledger))
        self.log.append({"tool": tool, "args": args, "result": result})
        return result

    def _reviewed(self, review: ReviewedAction, args: dict[str, Any]) -> Any:
        if review.decision == "reject":
            raise ActionRejected(review)
        if review.error is not None:
            raise RuntimeError(f"{review.tool} was approved but failed: {review.error}")
        result = review.message if review.decision == "respond" else review.result
        self.log.append({"tool": review.tool, "args": args, "result": result,
                         "decision": review.decision})
        return result

    def _check(self, tool: str) -> None:
        if tool not in self._allowed:
            raise ToolNotDeclared(f"tool {tool!r} is not declared by this agent")


_HANDOFF: ContextVar[Handoff] = ContextVar("accord_handoff")
"""The handoff of the agent call in progress (the compiled agent is shared between calls)."""


def _held(message: BaseMessage) -> dict[str, Any] | None:
    """The action a held call's answer carries, else ``None``."""
    if isinstance(message, ToolMessage) and isinstance(message.artifact, dict):
        return message.artifact.get(PENDING_ARTIFACT)
    return None


class ApprovalGateMiddleware(AgentMiddleware):
    """Holds back tool calls that a declared policy sends to a human.

    A held call is answered with a ``ToolMessage`` saying it awaits approval (the proposed
    action in its artifact); the other calls of the turn run; then the loop stops before the
    next model call, so every held call of the turn goes to one approval. Once the calls are
    decided the loop continues from there with the decisions as the calls' tool messages
    (:meth:`AgentRunner.arun` with a transcript), as LangChain's ``HumanInTheLoopMiddleware``
    does. A call already decided is answered with its decision, never held again. Calls that
    may run get an idempotency key, so a re-run after a crash is a no-op.
    """

    def __init__(self, toolbox: ToolBox, tool_timeout: float | None = None) -> None:
        super().__init__()
        self.toolbox = toolbox
        self.tool_timeout = tool_timeout
        """Seconds one tool call may take."""

    def _prepare(self, request: Any,
                 on_result: Callable[[Any], None]) -> tuple[Any, str, ToolMessage | None]:
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
        review = handoff.review(key=key)
        if review is not None:  # decided already: the decision answers, nothing runs again
            return request, key, ToolMessage(
                content=review.answer(), tool_call_id=call["id"], name=call["name"],
                status="success" if review.ran or review.decision == "respond" else "error")
        action = self.toolbox.gate(call["name"], args, key=key)
        if action is not None:
            action = ProposedAction(**{**action.as_dict(), "tool_call_id": call["id"] or ""})
            held = ToolMessage(
                content=f"{call['name']} is held for human approval ({action.reason}).",
                tool_call_id=call["id"],
                name=call["name"],
                artifact={PENDING_ARTIFACT: action.as_dict()},
            )
            return request, key, held
        keyed = self.toolbox.accepts_key(call["name"])
        bound = bound_tool(request.tool, key if keyed else None, on_result) if (
            request.tool is not None) else None
        if bound is not None:
            # the key is bound to the tool, not put in the call's args (the tool node strips
            # those); the raw result is what the ledger records
            request = request.override(tool=bound, tool_call={**call, "args": args})
        elif keyed:
            request = request.override(tool_call={**call, "args": {**args, IDEMPOTENCY_ARG: key}})
        return request, key, None

    @hook_config(can_jump_to=["end"])
    async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Stop the loop once the last turn's tools ran with calls held: they wait for a
        decision, which the loop continues from."""
        for message in reversed(state["messages"]):
            if isinstance(message, AIMessage):
                return None
            if _held(message) is not None:
                return {"jump_to": "end"}
        return None

    @staticmethod
    def _recordable(result: Any) -> bool:
        return isinstance(result, ToolMessage) and result.status != "error"

    @staticmethod
    def _recorded(request: Any, content: Any) -> ToolMessage:
        call = request.tool_call
        text = content if isinstance(content, str) else json.dumps(content, default=str,
                                                                   ensure_ascii=False)
        return ToolMessage(content=text, tool_call_id=call["id"], name=call["name"])

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        if request.tool is not None and HANDOFF_TARGET in (request.tool.metadata or {}):
            return await handler(request)  # a handoff changes nothing: no gate, no ledger
        raw: list[Any] = []
        request, key, answer = self._prepare(request, raw.append)
        if answer is None and (ledger := _HANDOFF.get().ledger) is not None:
            found, content = await ledger.arecall(key)
            if found:
                answer = self._recorded(request, content)
        if answer is not None:
            return answer
        if (ledger := _HANDOFF.get().ledger) is not None and \
                not self.toolbox.reads_only(request.tool_call["name"]):
            await ledger.asettle()  # what the agent read is written before it acts
        bound = asyncio.timeout(self.tool_timeout)
        try:
            async with bound:
                result = await handler(request)
        except TimeoutError:
            if bound.expired():
                raise tool_timed_out(request.tool_call["name"], self.tool_timeout) from None
            raise
        if (ledger := _HANDOFF.get().ledger) is not None and self._recordable(result):
            name = request.tool_call["name"]
            await ledger.arecord(key, name, raw[-1] if raw else result.content,
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
        calls = ToolCalls(self.toolbox, self.spec.tools, handoff, self.spec.tool_bound)
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
                ApprovalGateMiddleware(self.toolbox, self.spec.tool_bound),
                ProviderRetryMiddleware(
                    timeout=self.spec.model_timeout or self.models.call_bound(
                        self.spec.model or "small"),
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

    def _llm_result(self, state: dict[str, Any], start: int = 0) -> AgentResult:
        """The agent's result from its loop's messages (those from ``start`` on are this run's)."""
        messages = state["messages"]
        held: list[ProposedAction] = []
        handoff_to: str | None = None
        tool_calls: list[dict[str, Any]] = []
        for message in messages[start:]:
            if isinstance(message, ToolMessage):
                artifact = message.artifact if isinstance(message.artifact, dict) else {}
                if (action := _held(message)) is not None:
                    held.append(ProposedAction(**action))
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
        if held:
            handoff_to = None  # the approval decides first
            reply = reply or f"{', '.join(a.tool for a in held)} awaits approval."
        return AgentResult(
            reply=reply,
            status="needs_approval" if held else "handoff" if handoff_to else "completed",
            output=output,
            action=held[0] if held else None,
            actions=tuple(held[1:]),
            handoff_to=handoff_to,
            tool_calls=tuple(tool_calls),
            transcript=tuple(messages_to_dict(messages)) if held else (),
        )

    @staticmethod
    def _continued(transcript: Sequence[dict[str, Any]], handoff: Handoff) -> list[BaseMessage]:
        """The loop's messages with each held call answered by its decision."""
        messages = messages_from_dict(list(transcript))
        for i, message in enumerate(messages):
            action = _held(message)
            review = handoff.review(key=action["idempotency_key"]) if action else None
            if review is not None:
                messages[i] = ToolMessage(
                    content=review.answer(), tool_call_id=message.tool_call_id, name=message.name,
                    status="success" if review.ran or review.decision == "respond" else "error")
        return messages

    # public -------------------------------------------------------------------------------
    @property
    def model_name(self) -> str | None:
        """The model the agent runs on (``provider:model``), for an LLM agent."""
        return self.models.resolve_name(self.spec.model) if self.spec.kind == "llm" else None

    def on_model(self, model: str) -> AgentRunner:
        """The same agent on another model (a fallback hop), with no chain of its own."""
        spec = self.spec.model_copy(update={"model": model, "fallback": ()})
        return AgentRunner(spec, self.toolbox, self.models, self.middleware,
                           successors=self.successors)

    async def arun(self, handoff: Handoff, transcript: Sequence[dict[str, Any]] = ()) -> AgentResult:
        """Run the agent on a handoff (rule handlers run in a worker thread).

        ``transcript`` (an LLM agent's messages up to its held calls) continues that loop with
        the decisions in ``handoff.reviews``; a rule-based agent is simply run again and finds
        them in its handoff.
        """
        self._validate_input(handoff)
        if self.spec.kind == "rules":
            return self._validate_output(await asyncio.to_thread(self._run_rules, handoff))
        agent = self._agent()
        messages = (self._continued(transcript, handoff) if transcript
                    else [HumanMessage(handoff.render())])
        token = _HANDOFF.set(handoff)
        try:
            # The inner loop gets a durability of its own: under a parent run at
            # durability="sync" a checkpointer-less graph that inherits it fails on
            # `_put_checkpoint_fut` (see tests/engine/test_inner_durability.py).
            state = await agent.ainvoke({"messages": messages},
                                        {"configurable": {CONFIG_KEY_DURABILITY: "exit"}})
        finally:
            _HANDOFF.reset(token)
        return self._validate_output(self._llm_result(state, start=len(messages)))
