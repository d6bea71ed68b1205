"""Every model call, tool call and agent step has a bound from the agent's spec, with defaults,
on every entry point (``invoke``/``stream`` drive the async engine on a background loop,
``ainvoke``/``astream`` on the caller's).

A call cut off by its bound is a timeout: recorded (``attempt_failed`` for a model call, the
hop's cause ``timeout``), and the task moves on along its chain. The tests count calls and
read the records; they never time the run.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from langchain_core.tools import tool

from accord.agents import AgentRegistry, AgentResult, AgentSpec, ModelResolver, RetrySpec
from accord.agents.spec import STEP_TIMEOUT, TOOL_TIMEOUT
from accord.checkpoints import open_saver
from accord.graphs import Router, Workflow
from accord.records import AuditKind, ThreadStatus
from accord.testing import ScriptedChatModel, ToolCallReply

ENTRY_POINTS = ("invoke", "stream", "ainvoke", "astream")
BOUND = 0.3
"""The bound under test, in seconds."""
ANSWER, TWIN = "answer", "twin"
TRANSITIONS = {"router": [ANSWER, "END"], ANSWER: ["router"]}
QUERY = "how do I export my data?"


class CountingStarts(ScriptedChatModel):
    """A scripted model that counts the requests it started (``calls`` counts answers)."""

    started: int = 0

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None,
                         **kwargs: Any) -> Any:
        self.started += 1
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


@pytest.fixture
def release() -> Any:
    """An event a stuck tool waits on; set when the test ends, so no thread outlives it."""
    event = threading.Event()
    yield event
    event.set()


def slow_tool_for(release: threading.Event) -> Any:
    @tool
    def slow_lookup(topic: str = "") -> str:
        """Look something up (this one never answers in time)."""
        release.wait(60)
        return "too late"

    return slow_lookup


def twin_handler(handoff, tools) -> AgentResult:
    return AgentResult(f"twin answered: {handoff.query}")


def build(spec: AgentSpec, *, model: Any = None, tools: tuple[Any, ...] = ()) -> Workflow:
    twin = AgentSpec(id=TWIN, purpose="answers by rule", kind="rules", handler=twin_handler)
    models = ModelResolver(models={"agent": model}) if model is not None else None
    flow = Workflow("bounds", router=Router(default=ANSWER), max_hops=6, models=models,
                    registry=AgentRegistry([twin]), tools=list(tools))
    return flow.agent(spec).transitions(TRANSITIONS)


def run(flow: Workflow, entry: str, tmp_path,
        release: threading.Event | None = None) -> tuple[dict[str, Any], list[Any], Any]:
    """One request; ``release`` is set as soon as the run returns (a stuck tool's thread then
    ends before ``asyncio.run`` waits for its executor)."""
    thread = f"t-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread}}
    payload = {"messages": [{"role": "user", "content": QUERY}]}
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = flow.compile(checkpointer=saver)

        async def go() -> dict[str, Any]:
            try:
                if entry == "ainvoke":
                    return await graph.ainvoke(payload, config)
                return [c async for c in graph.astream(payload, config, stream_mode="values")][-1]
            finally:
                if release is not None:
                    release.set()

        if entry == "invoke":
            out = graph.invoke(payload, config)
        elif entry == "stream":
            out = list(graph.stream(payload, config, stream_mode="values"))[-1]
        else:
            out = asyncio.run(go())
        return out, saver.audit_log(thread), saver.threads.get(thread)


def events(audit: list[Any], kind: AuditKind) -> list[dict[str, Any]]:
    return [e.details() for e in audit if e.kind is kind]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_model_call_is_bounded_and_retried(entry, tmp_path):
    model = CountingStarts(["too late"] * 4, latency=60.0)
    spec = AgentSpec(id=ANSWER, purpose="answers", kind="llm", model="agent", fallback=[TWIN],
                     model_timeout=BOUND, retry=RetrySpec(max_attempts=2, initial_interval=0))
    out, audit, record = run(build(spec, model=model), entry, tmp_path)

    assert (model.started, model.calls) == (2, 0)  # two attempts, each cut off
    failed = events(audit, AuditKind.ATTEMPT_FAILED)
    assert [(e["attempt"], e["retried"], e["transient"]) for e in failed] == [
        (1, True, True), (2, False, True)]
    assert {e["error"] for e in failed} == {f"TimeoutError: the model gave no answer within {BOUND:g}s"}
    [hop] = events(audit, AuditKind.FALLBACK)
    assert (hop["cause"], hop["fallback"]) == ("timeout", TWIN)
    assert out["messages"][-1].content == f"twin answered: {QUERY}"
    assert record.status is ThreadStatus.DONE


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_llm_agents_tool_call_is_bounded(entry, tmp_path, release):
    slow = slow_tool_for(release)
    model = ScriptedChatModel([ToolCallReply("slow_lookup", {"topic": "export"}), "never"])
    spec = AgentSpec(id=ANSWER, purpose="answers", kind="llm", model="agent", fallback=[TWIN],
                     tools=("slow_lookup",), tool_timeout=BOUND)
    out, audit, record = run(build(spec, model=model, tools=(slow,)), entry, tmp_path, release)

    assert model.calls == 1  # the model asked for the tool; the tool never answered
    [hop] = events(audit, AuditKind.FALLBACK)
    assert hop["cause"] == "timeout"
    assert hop["error"] == f"TimeoutError: tool slow_lookup gave no answer within {BOUND:g}s"
    assert out["messages"][-1].content == f"twin answered: {QUERY}"
    assert record.status is ThreadStatus.DONE


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_rule_agents_tool_call_is_bounded(entry, tmp_path, release):
    slow = slow_tool_for(release)

    def handler(handoff, tools) -> AgentResult:
        return AgentResult(tools("slow_lookup", topic="export"))

    spec = AgentSpec(id=ANSWER, purpose="answers by rule", kind="rules", handler=handler,
                     fallback=[TWIN], tools=("slow_lookup",), tool_timeout=BOUND,
                     retry=RetrySpec(max_attempts=1))
    out, audit, record = run(build(spec, tools=(slow,)), entry, tmp_path, release)

    [hop] = events(audit, AuditKind.FALLBACK)
    assert hop["cause"] == "timeout"
    assert hop["error"] == f"TimeoutError: tool slow_lookup gave no answer within {BOUND:g}s"
    assert out["messages"][-1].content == f"twin answered: {QUERY}"
    assert record.status is ThreadStatus.DONE


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_rule_agents_step_is_bounded(entry, tmp_path, release):
    def stuck(handoff, tools) -> AgentResult:
        release.wait(60)
        return AgentResult("too late")

    spec = AgentSpec(id=ANSWER, purpose="answers by rule", kind="rules", handler=stuck,
                     fallback=[TWIN], timeout=BOUND)
    out, audit, _ = run(build(spec), entry, tmp_path, release)
    [hop] = events(audit, AuditKind.FALLBACK)
    assert (hop["cause"], hop["error"]) == ("timeout",
                                            f"TimeoutError: {ANSWER} took longer than {BOUND:g}s")
    assert out["messages"][-1].content == f"twin answered: {QUERY}"


def test_every_bound_has_a_default():
    spec = AgentSpec(id=ANSWER, purpose="answers", model="small")
    assert (spec.step_timeout, spec.tool_bound) == (STEP_TIMEOUT, TOOL_TIMEOUT)
    built = ModelResolver(request_timeout=7.0)
    assert built.call_bound("small") is None  # a built model's request timeout bounds it
    injected = ModelResolver(models={"small": ScriptedChatModel([])}, request_timeout=7.0)
    assert injected.call_bound("small") == 7.0
    bounded = AgentSpec(id=ANSWER, purpose="answers", model="small", timeout=5,
                        model_timeout=2, tool_timeout=1)
    assert (bounded.step_timeout, bounded.model_timeout, bounded.tool_bound) == (5, 2, 1)
