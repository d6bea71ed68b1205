"""Provider faults against the real OpenAI client, through the LLM agents and the router's LLM tier.

No model is injected: the workflow's `ModelResolver` builds `ChatOpenAI`, which talks HTTP to
`OpenAICompatServer` (`OPENAI_BASE_URL`), and the server acts out scripted faults. Every run
ends done: by a retry (the primary answered, no fallback) or by the recorded fallback. The
server counts the attempts; the wall time is bounded by the request timeout times the attempts.
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
from accord.testing import OpenAICompatServer, ProviderFault, StructuredReply

REQUEST_TIMEOUT = 0.5
"""Seconds one provider request may take here."""
ATTEMPTS = 2
"""Model calls an agent (and the router's LLM tier) makes in total."""
SLACK = 8.0
"""Seconds a run may take beyond its requests' timeouts (graph, saver; the machine is loaded)."""

ANSWER, BACKUP, DESK = "answer", "backup", "desk"
TRANSITIONS = {"router": [ANSWER, DESK, "END"], ANSWER: ["router"], DESK: ["router"]}
QUERY = "how do I export my data?"
CHOOSE_ANSWER = StructuredReply({"target": ANSWER, "confidence": 0.9, "reason": "a question"})

FAULTS = {
    "429-retry-after": ProviderFault.status(429, retry_after=0.4),
    "500": ProviderFault.status(500),
    "503": ProviderFault.status(503),
    "slow": ProviderFault.slow(REQUEST_TIMEOUT * 4, "too late"),
    "hang": ProviderFault.hang(),
    "drop": ProviderFault.drop(),
    "malformed": ProviderFault.malformed(),
    "truncated": ProviderFault.truncated(),
}


def backup_handler(handoff, tools) -> AgentResult:
    return AgentResult(f"backup answered: {handoff.query}")


def desk_handler(handoff, tools) -> AgentResult:
    return AgentResult("the desk took it")


def workflow(*, llm_router: bool) -> Workflow:
    """router -> ``answer`` (LLM over HTTP, falls back to ``backup``) or ``desk``."""
    answer = AgentSpec(id=ANSWER, purpose="answers questions", kind="llm", model="agent",
                       fallback=BACKUP,
                       retry=RetrySpec(max_attempts=ATTEMPTS, initial_interval=0))
    backup = AgentSpec(id=BACKUP, purpose="answers when the LLM agent cannot", kind="rules",
                       handler=backup_handler)
    desk = AgentSpec(id=DESK, purpose="takes what the router cannot place", kind="rules",
                     handler=desk_handler)
    classifier = LLMClassifier(model="router", timeout=30.0, max_attempts=ATTEMPTS)
    router = Router(default=DESK, classifier=classifier) if llm_router else Router(default=ANSWER)
    models = ModelResolver(tiers={"agent": "openai:gpt-4o-mini", "router": "openai:gpt-4o-mini"},
                           request_timeout=REQUEST_TIMEOUT)
    built = Workflow("faults", router=router, max_hops=6, models=models,
                     registry=AgentRegistry([backup]))
    return built.agent(answer).agent(desk).transitions(TRANSITIONS)


def run(flow: Workflow, entry: str, tmp_path, server: OpenAICompatServer,
        monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[Any], Any, float]:
    """One request through ``entry``: (final state, audit log, thread record, seconds taken)."""
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    thread = f"t-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread}}
    payload = {"messages": [{"role": "user", "content": QUERY}]}
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = flow.compile(checkpointer=saver)
        started = time.monotonic()
        out = graph.invoke(payload, config) if entry == "invoke" else asyncio.run(
            graph.ainvoke(payload, config))
        took = time.monotonic() - started
        audit = saver.audit_log(thread)
        record = saver.threads.get(thread)
    return out, audit, record, took


def events(audit: list[Any], kind: AuditKind) -> list[dict[str, Any]]:
    return [e.details() for e in audit if e.kind is kind]


# -- LLM agents -------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
def test_an_agent_retries_a_provider_fault_and_answers(fault, entry, tmp_path, monkeypatch):
    with OpenAICompatServer([fault, "exported"]) as server:
        out, audit, record, took = run(workflow(llm_router=False), entry, tmp_path, server,
                                       monkeypatch)
        arrivals, faults = server.arrivals, server.faults

    assert len(arrivals) == ATTEMPTS, [e["error"] for e in events(audit, AuditKind.FALLBACK)]
    assert faults == [fault.kind]
    assert events(audit, AuditKind.FALLBACK) == []  # the primary path answered
    assert (out["outputs"][ANSWER]["agent"], out["messages"][-1].content) == (ANSWER, "exported")
    assert record.status is ThreadStatus.DONE
    assert took < REQUEST_TIMEOUT * ATTEMPTS + SLACK
    if fault.retry_after:
        assert arrivals[1] - arrivals[0] >= fault.retry_after  # Retry-After honoured


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
@pytest.mark.parametrize("kind", ["hang", "503", "drop"])
def test_an_agent_whose_provider_stays_down_falls_back_within_its_bound(kind, entry, tmp_path,
                                                                       monkeypatch):
    fault = FAULTS[kind]
    with OpenAICompatServer(responder=lambda *_, **__: fault) as server:
        out, audit, record, took = run(workflow(llm_router=False), entry, tmp_path, server,
                                       monkeypatch)
        calls = server.calls

    assert calls == ATTEMPTS  # every attempt reached the provider, no more
    assert took < REQUEST_TIMEOUT * ATTEMPTS + SLACK
    [fallback] = events(audit, AuditKind.FALLBACK)
    assert (fallback["agent"], fallback["fallback"]) == (ANSWER, BACKUP)
    assert fallback["error"].startswith(("OpenAITimeoutError", "OpenAIAPIError",
                                         "OpenAIConnectionError")), fallback["error"]
    assert out["outputs"][ANSWER]["agent"] == BACKUP
    assert out["messages"][-1].content == f"backup answered: {QUERY}"
    assert record.status is ThreadStatus.DONE


@pytest.mark.parametrize("code", [400, 401, 404, 409, 422])
def test_a_4xx_other_than_429_is_not_retried(code, tmp_path, monkeypatch):
    with OpenAICompatServer([ProviderFault.status(code), "never sent"]) as server:
        out, audit, record, _ = run(workflow(llm_router=False), "invoke", tmp_path, server,
                                    monkeypatch)
        calls = server.calls
    assert calls == 1
    [fallback] = events(audit, AuditKind.FALLBACK)
    assert f"Error code: {code}" in fallback["error"]
    assert out["outputs"][ANSWER]["agent"] == BACKUP and record.status is ThreadStatus.DONE


# -- the router's LLM tier --------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
@pytest.mark.parametrize("kind", ["429-retry-after", "503", "hang", "drop", "malformed"])
def test_the_router_retries_a_provider_fault_and_classifies(kind, entry, tmp_path, monkeypatch):
    fault = FAULTS[kind]
    with OpenAICompatServer([fault, CHOOSE_ANSWER, "exported"]) as server:
        out, audit, record, took = run(workflow(llm_router=True), entry, tmp_path, server,
                                       monkeypatch)
        arrivals = server.arrivals

    assert len(arrivals) == 3  # the fault, the classification, the agent's answer
    route = events(audit, AuditKind.ROUTE)[0]
    assert (route["tier"], route["target"], route["attempts"]) == ("llm", ANSWER, 2)
    assert out["messages"][-1].content == "exported"
    assert record.status is ThreadStatus.DONE
    assert took < REQUEST_TIMEOUT * ATTEMPTS + SLACK
    if fault.retry_after:
        assert arrivals[1] - arrivals[0] >= fault.retry_after


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
def test_a_router_whose_provider_hangs_uses_its_default_within_its_bound(entry, tmp_path,
                                                                        monkeypatch):
    with OpenAICompatServer(responder=lambda *_, **__: ProviderFault.hang()) as server:
        out, audit, record, took = run(workflow(llm_router=True), entry, tmp_path, server,
                                       monkeypatch)
        calls = server.calls
    assert calls == ATTEMPTS
    assert took < REQUEST_TIMEOUT * ATTEMPTS + SLACK
    route = events(audit, AuditKind.ROUTE)[0]
    assert (route["tier"], route["target"], route["attempts"]) == ("default", DESK, ATTEMPTS)
    assert "OpenAITimeoutError" in route["reason"]
    assert out["messages"][-1].content == "the desk took it"
    assert record.status is ThreadStatus.DONE
