"""Fallback chains against the real OpenAI client: the agent on its large model, then on its
small model, then its rule-based twin, then a person (an interrupt answered with a reply).

No model is injected: `ModelResolver` builds `ChatOpenAI` for each tier, which talks HTTP to
`OpenAICompatServer`; the server acts out scripted faults and counts the requests, and each
request names the model it was for. Every request ends done (via the chain) or failed with its
cause; each hop is in the task's record and the audit log with its cause; every failed attempt
is an `attempt_failed` event. Wall time is bounded by the attempts: the tests count them (the
server's requests, the recorded attempts) instead of timing the run.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from langgraph.types import Command
from pydantic import BaseModel

from accord.agents import AgentRegistry, AgentResult, AgentSpec, ModelResolver, RetrySpec
from accord.checkpoints import open_saver
from accord.graphs import LLMClassifier, Router, Workflow
from accord.records import AuditKind, ThreadStatus
from accord.resilience import Exhaustion, FallbackHop, HopCause
from accord.testing import OpenAICompatServer, ProviderFault, StructuredReply

REQUEST_TIMEOUT = 0.5
"""Seconds one provider request may take here."""
LARGE, SMALL = "gpt-4o", "gpt-4o-mini"
ANSWER, TWIN, DESK = "answer", "twin", "desk"
TRANSITIONS = {"router": [ANSWER, DESK, "END"], ANSWER: ["router"], DESK: ["router"]}
QUERY = "how do I export my data?"


def twin_handler(handoff, tools) -> AgentResult:
    return AgentResult(f"twin answered: {handoff.query}")


def broken_twin(handoff, tools) -> AgentResult:
    raise LookupError("the twin has no answer either")


def desk_handler(handoff, tools) -> AgentResult:
    return AgentResult("the desk took it")


def workflow(chain: list[Any], *, twin=twin_handler, llm_router: bool = False,
             exhausted: list[Exhaustion] | None = None) -> Workflow:
    """router -> ``answer`` (LLM on the large tier, with ``chain``) or ``desk``."""
    answer = AgentSpec(id=ANSWER, purpose="answers questions", kind="llm", model="large",
                       fallback=chain, retry=RetrySpec(max_attempts=2, initial_interval=0))
    twin_spec = AgentSpec(id=TWIN, purpose="answers by rule", kind="rules", handler=twin)
    desk = AgentSpec(id=DESK, purpose="takes what the router cannot place", kind="rules",
                     handler=desk_handler)
    models = ModelResolver(tiers={"large": f"openai:{LARGE}", "small": f"openai:{SMALL}",
                                  "router": f"openai:{SMALL}"},
                           request_timeout=REQUEST_TIMEOUT)
    router = (Router(default=DESK, classifier=LLMClassifier(model="router", max_attempts=2))
              if llm_router else Router(default=ANSWER))
    built = Workflow("chains", router=router, max_hops=6, models=models,
                     registry=AgentRegistry([twin_spec]),
                     on_exhausted=exhausted.append if exhausted is not None else None)
    return built.agent(answer).agent(desk).transitions(TRANSITIONS)


CHAIN = [{"model": "small"}, TWIN, "human"]
"""large -> small -> the rule-based twin -> a person."""


class Run:
    """One thread of a workflow on accord's SQLite saver, through one entry point."""

    def __init__(self, flow: Workflow, tmp_path, server: OpenAICompatServer, monkeypatch,
                 entry: str = "invoke") -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        self.flow, self.entry, self.url = flow, entry, f"sqlite:///{tmp_path}/accord.db"
        self.config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}}

    def send(self, payload: Any) -> dict[str, Any]:
        with open_saver(self.url) as saver:
            graph = self.flow.compile(checkpointer=saver)
            if self.entry == "invoke":
                return graph.invoke(payload, self.config)
            return asyncio.run(graph.ainvoke(payload, self.config))

    def ask(self, text: str = QUERY) -> dict[str, Any]:
        return self.send({"messages": [{"role": "user", "content": text}]})

    def resume(self, value: Any) -> dict[str, Any]:
        return self.send(Command(resume=value))

    def read(self) -> tuple[list[Any], Any, Any]:
        """(audit log, thread record, pending interrupts)."""
        with open_saver(self.url) as saver:
            graph = self.flow.compile(checkpointer=saver)
            thread = self.config["configurable"]["thread_id"]
            return (saver.audit_log(thread), saver.threads.get(thread),
                    graph.get_state(self.config).interrupts)


def events(audit: list[Any], kind: AuditKind) -> list[dict[str, Any]]:
    return [e.details() for e in audit if e.kind is kind]


def finished_task(audit: list[Any]) -> dict[str, Any]:
    [task] = [e.details()["task"] for e in audit if e.kind is AuditKind.TASK_FINISHED]
    return task


def causes(task: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return [(h["kind"], h["model"], h["cause"]) for h in task["hops"]]


def models_called(server: OpenAICompatServer) -> list[str]:
    return [r["model"] for r in server.requests]


# -- the chain, hop by hop ----------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
def test_large_hangs_small_fails_the_twin_answers_each_hop_with_its_cause(entry, tmp_path,
                                                                          monkeypatch):
    script = [ProviderFault.hang(), ProviderFault.hang(),
              ProviderFault.status(500), ProviderFault.status(500)]
    with OpenAICompatServer(script) as server:
        run = Run(workflow(CHAIN), tmp_path, server, monkeypatch, entry)
        out = run.ask()
        called = models_called(server)
    audit, record, interrupts = run.read()

    assert called == [LARGE, LARGE, SMALL, SMALL]  # each model's attempts, no more
    assert out["outputs"][ANSWER]["agent"] == TWIN
    assert out["messages"][-1].content == f"twin answered: {QUERY}"
    assert record.status is ThreadStatus.DONE and not interrupts
    hops = [(e["agent"], e["model"], e["cause"], e["fallback"], e["fallback_model"], e["hop"])
            for e in events(audit, AuditKind.FALLBACK)]
    assert hops == [(ANSWER, f"openai:{LARGE}", "timeout", ANSWER, f"openai:{SMALL}", 1),
                    (ANSWER, f"openai:{SMALL}", "transient", TWIN, None, 2)]
    task = finished_task(audit)
    assert causes(task) == [("primary", f"openai:{LARGE}", "timeout"),
                            ("model", f"openai:{SMALL}", "transient"),
                            ("agent", None, None)]
    assert [(h["calls"], h["failures"]) for h in task["hops"]] == [(2, 2), (2, 2), (1, 0)]
    attempts = [(e["model"], e["attempt"], e["transient"], e["retried"])
                for e in events(audit, AuditKind.ATTEMPT_FAILED)]
    assert attempts == [(f"openai:{LARGE}", 1, True, True), (f"openai:{LARGE}", 2, True, False),
                        (f"openai:{SMALL}", 1, True, True), (f"openai:{SMALL}", 2, True, False)]
    assert not events(audit, AuditKind.AGENT_FAILED)


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
def test_the_primary_answers_after_a_retry_and_no_hop_is_taken(entry, tmp_path, monkeypatch):
    script = [ProviderFault.status(429, retry_after=0.1), "exported"]
    with OpenAICompatServer(script) as server:
        run = Run(workflow(CHAIN), tmp_path, server, monkeypatch, entry)
        out = run.ask()
        called = models_called(server)
    audit, record, _ = run.read()

    assert called == [LARGE, LARGE]
    assert (out["outputs"][ANSWER]["agent"], out["messages"][-1].content) == (ANSWER, "exported")
    assert events(audit, AuditKind.FALLBACK) == []  # the primary path answered
    [failed] = events(audit, AuditKind.ATTEMPT_FAILED)
    assert (failed["agent"], failed["attempt"], failed["retried"], failed["wait"]) == (
        ANSWER, 1, True, 0.1)
    assert "429" in failed["error"]
    task = finished_task(audit)
    assert causes(task) == [("primary", f"openai:{LARGE}", None)]
    assert (task["hops"][0]["calls"], task["hops"][0]["failures"]) == (2, 1)


@pytest.mark.parametrize("code", [400, 404, 422])
def test_a_4xx_is_not_retried_the_next_hop_takes_over(code, tmp_path, monkeypatch):
    with OpenAICompatServer([ProviderFault.status(code), "small answered"]) as server:
        run = Run(workflow(CHAIN), tmp_path, server, monkeypatch)
        out = run.ask()
        called = models_called(server)
    audit, _, _ = run.read()
    assert called == [LARGE, SMALL]  # one call to the large model: a 4xx fails the same again
    [failed] = events(audit, AuditKind.ATTEMPT_FAILED)
    assert (failed["transient"], failed["retried"]) == (False, False)
    assert causes(finished_task(audit))[0] == ("primary", f"openai:{LARGE}", "error")
    assert out["messages"][-1].content == "small answered"


@pytest.mark.parametrize("fault", [ProviderFault.malformed(), ProviderFault.truncated()],
                         ids=["malformed", "truncated"])
def test_a_bad_body_is_transient_and_retried(fault, tmp_path, monkeypatch):
    with OpenAICompatServer([fault, "exported"]) as server:
        run = Run(workflow(CHAIN), tmp_path, server, monkeypatch)
        out = run.ask()
        called = models_called(server)
    audit, _, _ = run.read()
    assert called == [LARGE, LARGE]
    [failed] = events(audit, AuditKind.ATTEMPT_FAILED)
    assert (failed["transient"], failed["retried"]) == (True, True)
    assert out["messages"][-1].content == "exported"


# -- the person at the end of the chain --------------------------------------------------------


@pytest.mark.parametrize(("entry", "answer"), [
    ("invoke", {"decision": "reply", "reply": "I exported it for you.", "by": "ana"}),
    ("ainvoke", {"decisions": [{"type": "respond", "message": "I exported it for you."}],
                 "by": "ana"}),
])
def test_a_person_answers_when_every_agent_failed(entry, answer, tmp_path, monkeypatch):
    with OpenAICompatServer(responder=lambda *_, **__: ProviderFault.status(503)) as server:
        run = Run(workflow(CHAIN, twin=broken_twin), tmp_path, server, monkeypatch, entry)
        run.ask()
        audit, record, interrupts = run.read()
        assert record.status is ThreadStatus.INTERRUPTED
        [asked] = interrupts
        payload = asked.value
        assert (payload["type"], payload["agent"], payload["query"]) == ("escalation", ANSWER,
                                                                          QUERY)
        assert [(h["kind"], h["cause"]) for h in payload["hops"]] == [
            ("primary", "transient"), ("model", "transient"), ("agent", "error")]
        assert payload["reason"].startswith("error: LookupError: the twin has no answer")
        calls_before = server.calls
        assert calls_before == 4

        again = run.resume({"decision": "approve"})  # not an answer to an escalation
        assert server.calls == calls_before
        _, record, interrupts = run.read()
        assert record.status is ThreadStatus.INTERRUPTED
        assert "--respond" in interrupts[0].value["error"]

        out = run.resume(answer)
        assert server.calls == calls_before  # the failed hops are not tried again on resume
    audit, record, _ = run.read()
    assert again is not None
    assert record.status is ThreadStatus.DONE
    assert out["messages"][-1].content == "I exported it for you."
    assert out["outputs"][ANSWER]["agent"] == "human"
    fallbacks = [(e["fallback"], e["cause"]) for e in events(audit, AuditKind.FALLBACK)]
    assert fallbacks == [(ANSWER, "transient"), (TWIN, "transient"), ("human", "error")]
    [human] = events(audit, AuditKind.HUMAN_DECISION)
    assert (human["decision"], human["by"]) == ("reply", "ana")
    assert causes(finished_task(audit))[-1] == ("human", None, None)
    assert len(events(audit, AuditKind.ATTEMPT_FAILED)) == 5  # 2 large, 2 small, 1 twin


def test_a_person_who_declines_ends_the_task_failed_with_the_cause(tmp_path, monkeypatch):
    exhausted: list[Exhaustion] = []
    with OpenAICompatServer(responder=lambda *_, **__: ProviderFault.status(503)) as server:
        run = Run(workflow([TWIN, "human"], twin=broken_twin, exhausted=exhausted), tmp_path,
                  server, monkeypatch)
        run.ask()
        out = run.resume({"decision": "reject", "reason": "not ours to answer", "by": "ana"})
    audit, record, _ = run.read()
    task = finished_task(audit)
    assert task["status"] == "failed"
    assert "not ours to answer" in task["result"]
    assert causes(task) == [("primary", f"openai:{LARGE}", "transient"),
                            ("agent", None, "error"), ("human", None, "declined")]
    [failed] = events(audit, AuditKind.AGENT_FAILED)
    assert (failed["agent"], failed["cause"]) == ("human", "declined")
    [letter] = exhausted
    assert (letter.agent, letter.query, letter.task_id) == (ANSWER, QUERY, task["id"])
    assert [h.cause for h in letter.hops] == [HopCause.TRANSIENT, HopCause.ERROR,
                                              HopCause.DECLINED]
    assert out["messages"][-1].content  # the run went on to its end
    assert record.status is ThreadStatus.DONE


# -- exhausted without a person ----------------------------------------------------------------


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
def test_an_exhausted_chain_fails_the_task_with_its_cause(entry, tmp_path, monkeypatch):
    exhausted: list[Exhaustion] = []
    with OpenAICompatServer(responder=lambda *_, **__: ProviderFault.hang()) as server:
        run = Run(workflow([{"model": "small"}, TWIN], twin=broken_twin, exhausted=exhausted),
                  tmp_path, server, monkeypatch, entry)
        run.ask()
        calls = server.calls
    audit, record, _ = run.read()
    assert calls == 4  # timeout x attempts on each model: the bound of the run
    task = finished_task(audit)
    assert task["status"] == "failed"
    assert task["result"] == "LookupError: the twin has no answer either"
    assert causes(task) == [("primary", f"openai:{LARGE}", "timeout"),
                            ("model", f"openai:{SMALL}", "timeout"), ("agent", None, "error")]
    [failed] = events(audit, AuditKind.AGENT_FAILED)
    assert (failed["agent"], failed["cause"], failed["hops"]) == (TWIN, "error", 3)
    [letter] = exhausted
    assert letter.key.endswith(f":{task['id']}:{ANSWER}")
    assert letter.error == "LookupError: the twin has no answer either"
    assert len(letter.attempts) == 5
    assert record.status is ThreadStatus.DONE


# -- the router's LLM tier records its attempts too ---------------------------------------------


def test_the_routers_failed_attempts_are_recorded(tmp_path, monkeypatch):
    choose = StructuredReply({"target": ANSWER, "confidence": 0.9, "reason": "a question"})
    with OpenAICompatServer([ProviderFault.status(503), choose, "exported"]) as server:
        run = Run(workflow(CHAIN, llm_router=True), tmp_path, server, monkeypatch)
        out = run.ask()
        called = models_called(server)
    audit, _, _ = run.read()
    assert called == [SMALL, SMALL, LARGE]
    [failed] = events(audit, AuditKind.ATTEMPT_FAILED)
    assert (failed["agent"], failed["model"], failed["attempt"], failed["retried"]) == (
        "router", f"openai:{SMALL}", 1, True)
    assert events(audit, AuditKind.ROUTE)[0]["attempts"] == 2
    assert out["messages"][-1].content == "exported"


# -- rule-based agents retry themselves, never on validation errors ---------------------------


class Needs(BaseModel):
    query: str
    invoice: str


def rules_flow(handler, *, input_schema=None) -> Workflow:
    spec = AgentSpec(id=ANSWER, purpose="answers by rule", kind="rules", handler=handler,
                     input_schema=input_schema, fallback=[TWIN],
                     retry=RetrySpec(max_attempts=3, initial_interval=0))
    twin_spec = AgentSpec(id=TWIN, purpose="answers by rule", kind="rules", handler=twin_handler)
    built = Workflow("rules", router=Router(default=ANSWER), max_hops=6,
                     registry=AgentRegistry([twin_spec]))
    return built.agent(spec).agent(
        AgentSpec(id=DESK, purpose="desk", kind="rules", handler=desk_handler)
    ).transitions(TRANSITIONS)


def test_a_rule_agent_retries_a_transient_error_and_answers(tmp_path):
    calls: list[int] = []

    def flaky(handoff, tools) -> AgentResult:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError("database connection reset")
        return AgentResult("answered on the second attempt")

    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        config = {"configurable": {"thread_id": "t-flaky"}}
        out = rules_flow(flaky).compile(checkpointer=saver).invoke(
            {"messages": [{"role": "user", "content": QUERY}]}, config)
        audit = saver.audit_log("t-flaky")
    assert len(calls) == 2
    assert out["messages"][-1].content == "answered on the second attempt"
    [failed] = events(audit, AuditKind.ATTEMPT_FAILED)
    assert (failed["agent"], failed["model"], failed["retried"]) == (ANSWER, None, True)
    assert events(audit, AuditKind.FALLBACK) == []


def test_a_validation_error_is_not_retried(tmp_path):
    calls: list[int] = []

    def handler(handoff, tools) -> AgentResult:
        calls.append(1)
        Needs.model_validate({"query": handoff.query})  # no invoice: the same every time
        return AgentResult("never")

    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        config = {"configurable": {"thread_id": "t-invalid"}}
        out = rules_flow(handler).compile(checkpointer=saver).invoke(
            {"messages": [{"role": "user", "content": QUERY}]}, config)
        audit = saver.audit_log("t-invalid")
    assert calls == [1]  # tried once, never retried
    [failed] = events(audit, AuditKind.ATTEMPT_FAILED)
    assert (failed["attempt"], failed["transient"], failed["retried"]) == (1, False, False)
    assert failed["error"].startswith("ValidationError")
    [hop] = events(audit, AuditKind.FALLBACK)
    assert hop["cause"] == "error"
    assert out["outputs"][ANSWER]["agent"] == TWIN


# -- the chain as data ---------------------------------------------------------------------------


def test_a_chain_from_yaml_and_from_python_is_the_same(tmp_path):
    from accord.agents import load_specs

    path = tmp_path / "agents.yaml"
    path.write_text("""
- id: billing
  purpose: bills
  model: large
  fallback: [{model: small}, billing_rules, human]
""")
    [spec] = load_specs(path)
    python = AgentSpec(id="billing", purpose="bills", model="large",
                       fallback=[FallbackHop(model="small"), FallbackHop(agent="billing_rules"),
                                 FallbackHop(human=True)])
    assert spec.fallback == python.fallback
    assert [str(h) for h in spec.fallback] == ["model small", "billing_rules", "human"]


def test_a_bad_chain_is_refused_with_one_clear_error(tmp_path):
    from accord.agents import SpecError, load_specs
    from accord.graphs.errors import WorkflowBuildError

    path = tmp_path / "agents.yaml"
    path.write_text("- id: a\n  purpose: p\n  model: small\n  fallback: [{model: x, agent: y}]\n")
    with pytest.raises(SpecError, match="exactly one of model, agent or human"):
        load_specs(path)
    flow = Workflow("x", router=Router(default="a"), max_hops=4).agent(
        AgentSpec(id="a", purpose="p", model="small", fallback=["nobody"])).transitions(
        {"router": ["a", "END"], "a": ["router"]})
    with pytest.raises(WorkflowBuildError, match="unknown agent 'nobody'"):
        flow.compile()
    rules = Workflow("y", router=Router(default="a"), max_hops=4).agent(
        AgentSpec(id="a", purpose="p", kind="rules", handler=twin_handler,
                  fallback=[{"model": "small"}])).transitions(
        {"router": ["a", "END"], "a": ["router"]})
    with pytest.raises(WorkflowBuildError, match="cannot fall back to model"):
        rules.compile()


@pytest.mark.parametrize(("value", "expected"), [
    ({"decisions": [{"type": "respond", "message": "done"}], "by": "ana"},
     ("reply", "done", None, "ana")),
    ({"decisions": [{"type": "reject", "message": "not ours"}]}, ("reject", None, "not ours", None)),
    ({"decision": "respond", "message": "done", "by": "bo"}, ("reply", "done", None, "bo")),
    ({"decision": "reply", "reply": "done"}, ("reply", "done", None, None)),
])
def test_an_escalation_takes_langchains_decisions_and_accords_shapes(value, expected):
    from accord.resilience.escalation import parse_answer

    got = parse_answer(value)
    assert (got.decision, got.reply, got.reason, got.by) == expected


@pytest.mark.parametrize(("value", "error"), [
    ({"decisions": []}, "exactly one decision"),
    ({"decisions": [{"type": "respond"}, {"type": "respond"}]}, "exactly one decision"),
    ({"decisions": [{"type": "ignore"}]}, "unknown decision type 'ignore'"),
    ({"decisions": [{"type": "approve"}]}, "not an approval"),
    ({"decisions": [{"type": "respond", "message": "  "}]}, "a reply needs its text"),
])
def test_a_wrong_escalation_answer_says_what_is_wrong(value, error):
    from accord.resilience.escalation import InvalidAnswer, parse_answer

    with pytest.raises(InvalidAnswer, match=error):
        parse_answer(value)
