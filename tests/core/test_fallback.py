"""When an LLM agent fails, its declared rule-based fallback takes over (audit kind "fallback");
with no fallback the task fails and the run goes to the error path."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from accord.agents import AgentResult, AgentSpec, ModelResolver
from accord.graphs import Router, Step, Workflow
from accord.graphs.support import build_support
from accord.testing import ScriptedChatModel


def always_failing() -> ScriptedChatModel:
    return ScriptedChatModel(responder=lambda messages, **kw: RuntimeError("provider is down"))


@pytest.mark.parametrize(
    ("make_model", "error"),
    [
        (lambda: ScriptedChatModel([RuntimeError("provider is down")] * 5), "RuntimeError: provider is down"),
        (always_failing, "RuntimeError: provider is down"),
        (lambda: ScriptedChatModel([]), "ScriptExhausted"),
    ],
    ids=["exception-replies", "exception-responder", "script-exhausted"],
)
def test_llm_failure_falls_back_to_the_rule_agent(support_db, config, make_model, error):
    model = make_model()
    workflow = build_support(db=support_db, use_llm=True, models=ModelResolver(models={"*": model}))
    graph = workflow.compile(checkpointer=InMemorySaver())
    out = graph.invoke({"messages": [{"role": "user", "content": "my app crashes on start"}]}, config())
    assert model.calls >= 1
    [fallback] = [e for e in out["audit"] if e["kind"] == "fallback"]
    assert (fallback["node"], fallback["agent"], fallback["fallback"]) == ("tech", "tech", "tech_rules")
    assert fallback["error"].startswith(error)
    assert out["outputs"]["tech"]["agent"] == "tech_rules"
    assert out["messages"][-1].content.startswith("App crashes on start (KB-2)")
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]
    assert not [e for e in out["audit"] if e["kind"] == "agent_failed"]


def test_the_fallback_is_gated_by_approval_too(support_db, config):
    """billing (LLM) fails; billing_rules proposes the 480 refund, which still waits for a human."""
    model = always_failing()
    workflow = build_support(db=support_db, use_llm=True, models=ModelResolver(models={"*": model}))
    graph = workflow.compile(checkpointer=InMemorySaver())
    cfg = config()
    out = graph.invoke({"messages": [{"role": "user", "content": "Please refund invoice INV-1002"}]}, cfg)
    assert [e["fallback"] for e in out["audit"] if e["kind"] == "fallback"] == ["billing_rules"]
    assert graph.get_state(cfg).interrupts[0].value["agent"] == "billing_rules"
    assert support_db.refunds() == []
    graph.invoke(Command(resume={"decision": "approve", "by": "alice"}), cfg)
    assert [r["amount"] for r in support_db.refunds()] == [480.0]


def test_an_agent_failing_without_fallback_goes_to_the_error_node():
    def broken(handoff, tools) -> AgentResult:
        raise LookupError("no such customer")

    workflow = Workflow("t", router=Router(default="desk"), error_node="triage", max_hops=6)
    workflow.agent(AgentSpec(id="desk", kind="rules", purpose="t", handler=broken))
    workflow.node("triage", lambda s: Step("END", {"messages": [AIMessage(s["errors"][-1]["error"])]}))
    workflow.transitions({"router": ["desk", "END"], "desk": ["router"], "triage": ["END"]})
    out = workflow.compile().invoke({"messages": [{"role": "user", "content": "hi"}]})
    [failed] = [e for e in out["audit"] if e["kind"] == "agent_failed"]
    assert (failed["agent"], failed["error"]) == ("desk", "LookupError: no such customer")
    assert [t["status"] for t in out["tasks"].values()] == ["failed"]
    assert out["messages"][-1].content == "LookupError: no such customer"
