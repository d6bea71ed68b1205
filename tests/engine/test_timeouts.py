"""Timeouts and retries behave the same on every entry point, sync or async.

``invoke`` and ``stream`` run the engine's async code on a background loop; ``ainvoke`` and
``astream`` run it on the caller's loop. On each:

- an LLM agent slower than its spec's ``timeout`` is cut off (the run does not wait for the
  model) and its fallback answers, with a ``fallback`` audit event saying why;
- the router's LLM tier that hangs is cut off after ``LLMClassifier.timeout`` on every attempt,
  and the declared default decides, with a ``route`` event giving the reason and the attempts;
- a transient failure is retried (router: ``attempts``; agent: ``ModelRetryMiddleware``, counted
  as model calls), a permanent one is not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from accord.agents import AgentRegistry, AgentResult, AgentSpec, ModelResolver, RetrySpec
from accord.checkpoints import open_saver
from accord.graphs import LLMClassifier, Router, Workflow
from accord.records import AuditKind, ThreadStatus
from accord.testing import ScriptedChatModel, StructuredReply

ENTRY_POINTS = ("invoke", "stream", "ainvoke", "astream")
LATENCY = 30.0
"""Seconds a hanging model takes to answer; every cut-off run must end far sooner."""
TIMEOUT = 0.3
"""The timeout under test."""
BOUND = 10.0
"""A cut-off run finishes within this many seconds (generous: the machine is loaded)."""

ANSWER, BACKUP, DESK = "answer", "backup", "desk"
TRANSITIONS = {"router": [ANSWER, DESK, "END"], ANSWER: ["router"], DESK: ["router"]}


class CountingStarts(ScriptedChatModel):
    """A scripted model that also counts the requests it started (``calls`` counts only the
    ones that got as far as answering, after ``latency``)."""

    started: int = 0

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None,
                         **kwargs: Any) -> Any:
        self.started += 1
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def backup_handler(handoff, tools) -> AgentResult:
    return AgentResult(f"backup answered: {handoff.query}")


def desk_handler(handoff, tools) -> AgentResult:
    return AgentResult("the desk took it")


def build(tmp_path, *, agent_model: Any, router: Router, router_model: Any = None,
          timeout: float | None = None, retry: RetrySpec | None = None) -> Any:
    """A small workflow: router -> ``answer`` (LLM, falls back to ``backup``) or ``desk``."""
    answer = AgentSpec(id=ANSWER, purpose="answers questions", kind="llm", model="agent",
                       fallback=BACKUP, timeout=timeout,
                       retry=retry or RetrySpec(max_attempts=1, initial_interval=0))
    backup = AgentSpec(id=BACKUP, purpose="answers when the LLM agent cannot", kind="rules",
                       handler=backup_handler)
    desk = AgentSpec(id=DESK, purpose="takes what the router cannot place", kind="rules",
                     handler=desk_handler)
    models = {"agent": agent_model}
    if router_model is not None:
        models["router"] = router_model
    workflow = Workflow("timeouts", router=router, max_hops=6,
                        models=ModelResolver(models=models), registry=AgentRegistry([backup]))
    return workflow.agent(answer).agent(desk).transitions(TRANSITIONS)


def run(workflow: Any, entry: str, tmp_path) -> tuple[dict[str, Any], list[Any], Any, float]:
    """One request through ``entry`` on accord's saver: (final state, audit log, thread record,
    seconds the run took)."""
    thread = f"t-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread}}
    payload = {"messages": [{"role": "user", "content": "how do I export my data?"}]}
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = workflow.compile(checkpointer=saver)

        async def go() -> dict[str, Any]:
            if entry == "ainvoke":
                return await graph.ainvoke(payload, config)
            return [c async for c in graph.astream(payload, config, stream_mode="values")][-1]

        started = time.monotonic()
        if entry == "invoke":
            out = graph.invoke(payload, config)
        elif entry == "stream":
            out = list(graph.stream(payload, config, stream_mode="values"))[-1]
        else:
            out = asyncio.run(go())
        took = time.monotonic() - started
        audit = saver.audit_log(thread)
        record = saver.threads.get(thread)
    return out, audit, record, took


def events(audit: list[Any], kind: AuditKind) -> list[dict[str, Any]]:
    return [e.details() for e in audit if e.kind is kind]


# -- the agent's timeout ----------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_agent_slower_than_its_timeout_is_cut_off_and_its_fallback_answers(entry, tmp_path):
    model = CountingStarts(["too late"], latency=LATENCY)
    workflow = build(tmp_path, agent_model=model, router=Router(default=ANSWER), timeout=TIMEOUT)
    out, audit, record, took = run(workflow, entry, tmp_path)

    assert took < BOUND, f"the run waited {took:.1f}s for a model that takes {LATENCY:g}s"
    assert (model.started, model.calls) == (1, 0)  # called, and cut off before it answered
    [fallback] = events(audit, AuditKind.FALLBACK)
    assert (fallback["agent"], fallback["fallback"]) == (ANSWER, BACKUP)
    assert fallback["error"] == f"TimeoutError: {ANSWER} took longer than {TIMEOUT:g}s"
    assert out["outputs"][ANSWER]["agent"] == BACKUP
    assert out["messages"][-1].content == "backup answered: how do I export my data?"
    assert record.status is ThreadStatus.DONE


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_agent_within_its_timeout_answers(entry, tmp_path):
    model = ScriptedChatModel(["exported"], latency=0.05)
    workflow = build(tmp_path, agent_model=model, router=Router(default=ANSWER), timeout=20.0)
    out, audit, record, _ = run(workflow, entry, tmp_path)
    assert model.calls == 1 and events(audit, AuditKind.FALLBACK) == []
    assert (out["outputs"][ANSWER]["agent"], out["messages"][-1].content) == (ANSWER, "exported")
    assert record.status is ThreadStatus.DONE


# -- the agent's retries ----------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_transient_agent_failure_is_retried(entry, tmp_path):
    model = ScriptedChatModel([ConnectionError("connection reset"), "exported"])
    workflow = build(tmp_path, agent_model=model, router=Router(default=ANSWER),
                     retry=RetrySpec(max_attempts=2, initial_interval=0))
    out, audit, record, _ = run(workflow, entry, tmp_path)
    assert model.calls == 2  # the failed call and its retry
    assert events(audit, AuditKind.FALLBACK) == []
    assert (out["outputs"][ANSWER]["agent"], out["messages"][-1].content) == (ANSWER, "exported")
    assert record.status is ThreadStatus.DONE


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_agent_that_keeps_failing_falls_back_after_its_attempts(entry, tmp_path):
    model = ScriptedChatModel(responder=lambda messages, **_: ConnectionError("connection reset"))
    workflow = build(tmp_path, agent_model=model, router=Router(default=ANSWER),
                     retry=RetrySpec(max_attempts=3, initial_interval=0))
    out, audit, _, _ = run(workflow, entry, tmp_path)
    assert model.calls == 3  # max_attempts, no more
    [fallback] = events(audit, AuditKind.FALLBACK)
    assert fallback["error"] == "ConnectionError: connection reset"
    assert out["outputs"][ANSWER]["agent"] == BACKUP


# -- the router's LLM tier --------------------------------------------------------------------


def llm_router(*, max_attempts: int = 2) -> Router:
    return Router(default=DESK, classifier=LLMClassifier(model="router", timeout=TIMEOUT,
                                                         max_attempts=max_attempts))


CHOOSE_ANSWER = StructuredReply({"target": ANSWER, "confidence": 0.9, "reason": "a question"})


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_hanging_router_llm_is_cut_off_and_the_default_decides(entry, tmp_path):
    router_model = CountingStarts(responder=lambda messages, **_: CHOOSE_ANSWER, latency=LATENCY)
    agent_model = ScriptedChatModel([])
    workflow = build(tmp_path, agent_model=agent_model, router=llm_router(max_attempts=2),
                     router_model=router_model)
    out, audit, record, took = run(workflow, entry, tmp_path)

    assert took < BOUND, f"the run waited {took:.1f}s for a router model that takes {LATENCY:g}s"
    route = events(audit, AuditKind.ROUTE)[0]
    assert (route["tier"], route["target"]) == ("default", DESK)
    assert route["reason"] == f"LLM answer rejected (TimeoutError): no answer within {TIMEOUT:g}s"
    assert route["attempts"] == 2  # max_attempts, each cut off
    assert (router_model.started, router_model.calls) == (2, 0)
    assert agent_model.calls == 0
    assert out["messages"][-1].content == "the desk took it"
    assert record.status is ThreadStatus.DONE


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("failure", [TimeoutError("upstream timed out"),
                                     ConnectionError("connection reset")],
                         ids=["timeout", "connection"])
def test_a_transient_router_failure_is_retried(entry, failure, tmp_path):
    router_model = ScriptedChatModel([failure, CHOOSE_ANSWER])
    agent_model = ScriptedChatModel(["exported"])
    workflow = build(tmp_path, agent_model=agent_model, router=llm_router(max_attempts=2),
                     router_model=router_model)
    out, audit, _, _ = run(workflow, entry, tmp_path)
    route = events(audit, AuditKind.ROUTE)[0]
    assert (route["tier"], route["target"], route["attempts"]) == ("llm", ANSWER, 2)
    assert router_model.calls == 2
    assert out["messages"][-1].content == "exported"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_permanent_router_failure_is_not_retried(entry, tmp_path):
    router_model = ScriptedChatModel([ValueError("malformed request"), CHOOSE_ANSWER])
    workflow = build(tmp_path, agent_model=ScriptedChatModel([]), router=llm_router(max_attempts=3),
                     router_model=router_model)
    out, audit, _, _ = run(workflow, entry, tmp_path)
    route = events(audit, AuditKind.ROUTE)[0]
    assert (route["tier"], route["target"], route["attempts"]) == ("default", DESK, 1)
    assert route["reason"] == "LLM answer rejected (ValueError): malformed request"
    assert router_model.calls == 1
    assert out["messages"][-1].content == "the desk took it"
