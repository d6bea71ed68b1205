"""The tiered router: rules (free), then an LLM structured-output classification, then a default."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from langchain_core.messages import AIMessage

from accord.agents import ModelResolver
from accord.graphs import (
    KeywordRule,
    LLMClassifier,
    PatternRule,
    PredicateRule,
    RouteDecision,
    Router,
    Step,
    Workflow,
)
from accord.testing import ScriptedChatModel, StructuredReply

ROUTER = Router(
    default="triage",
    rules=(KeywordRule("billing", ("refund", "invoice")),),
    classifier=LLMClassifier(threshold=0.6),
    descriptions={"tech": "crashes and errors", "billing": "money"},
)


@pytest.fixture
def routed(completes) -> Callable[[ScriptedChatModel], object]:
    """router -> billing | tech | triage; tech may also go to `secret`, the router may not."""

    def build(model: ScriptedChatModel, router: Router = ROUTER, checkpointer=None):
        workflow = Workflow("r", router=router, max_hops=10, models=ModelResolver(models={"*": model}))
        for name in ("billing", "tech", "secret"):
            workflow.node(name, completes(name))
        workflow.node("triage", lambda s: Step("END", {"messages": [AIMessage("triaged", name="triage")]}))
        workflow.transitions({
            "router": ["billing", "tech", "triage", "END"],
            "billing": ["router"], "tech": ["router", "secret"], "secret": ["router"],
            "triage": ["END"],
        })
        return workflow.compile(checkpointer=checkpointer)

    return build


def ask(graph, text: str, config: dict | None = None) -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": text}]}, config)


def routes(out: dict) -> list[dict]:
    return [e for e in out["audit"] if e["kind"] == "route"]


def test_rule_tier_decides_without_a_model_call(routed):
    model = ScriptedChatModel([])  # any call would raise ScriptExhausted
    out = ask(routed(model), "I want a refund please")
    assert model.calls == 0
    first = routes(out)[0]
    assert (first["tier"], first["target"], first["reason"]) == ("rule", "billing", "keyword 'refund'")
    assert out["messages"][-1].content == "billing done"


def test_llm_tier_routes_on_structured_output(routed):
    model = ScriptedChatModel([StructuredReply({"target": "tech", "confidence": 0.9, "reason": "a crash"})])
    out = ask(routed(model), "the app closes by itself")
    first = routes(out)[0]
    assert (first["tier"], first["target"], first["confidence"], first["reason"]) == ("llm", "tech", 0.9, "a crash")
    assert out["messages"][-1].content == "tech done"
    prompt = model.call_log[0]
    assert "- tech: crashes and errors" in prompt[0].content
    assert "secret" not in prompt[0].content  # only the router's own targets are offered
    assert prompt[-1].content == "the app closes by itself"


def test_low_confidence_goes_to_the_default(routed):
    model = ScriptedChatModel([StructuredReply({"target": "tech", "confidence": 0.3, "reason": "unsure"})])
    out = ask(routed(model), "something odd")
    first = routes(out)[0]
    assert (first["tier"], first["target"], first["confidence"]) == ("default", "triage", 0.3)
    assert "below 0.60" in first["reason"] and "suggested tech" in first["reason"]
    assert out["messages"][-1].content == "triaged"


@pytest.mark.parametrize("target", ["secret", "router", "END", "__end__", "nowhere"])
def test_an_llm_target_the_router_may_not_go_to_is_never_followed(routed, target):
    model = ScriptedChatModel([StructuredReply({"target": target, "confidence": 0.99, "reason": "trust me"})])
    out = ask(routed(model), "take me somewhere")
    first = routes(out)[0]
    assert (first["tier"], first["target"]) == ("default", "triage")
    assert "rejected" in first["reason"]
    assert "secret" not in out["outputs"] and out["messages"][-1].content == "triaged"
    moves = [e["target"] for e in out["audit"] if e["kind"] == "transition" and e["node"] == "router"]
    assert moves == ["triage"]


@pytest.mark.parametrize("reply", ["plain text, no structure", ValueError("bad output"), ConnectionError("provider down")])
def test_an_unparseable_llm_answer_goes_to_the_default(routed, reply):
    model = ScriptedChatModel([reply])
    first = routes(ask(routed(model), "hmm"))[0]
    assert (first["tier"], first["target"]) == ("default", "triage")
    assert first["reason"].startswith("LLM answer rejected")


def test_returning_after_the_task_completed_costs_no_model_call(routed, config):
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel([StructuredReply({"target": "tech", "confidence": 0.8, "reason": "r"}),
                               StructuredReply({"target": "billing", "confidence": 0.8, "reason": "r"})])
    graph = routed(model, checkpointer=InMemorySaver())
    cfg = config()
    out = ask(graph, "the screen flickers", cfg)
    assert model.calls == 1
    assert [(r["tier"], r["target"]) for r in routes(out)] == [("llm", "tech"), ("finish", "__end__")]
    out = ask(graph, "and I was billed oddly", cfg)  # a new request on the thread is routed again
    assert model.calls == 2
    assert [(r["tier"], r["target"]) for r in routes(out)][-2:] == [("llm", "billing"), ("finish", "__end__")]


def test_rules_are_tried_in_order_and_fall_through_to_the_default():
    router = Router(default="triage", rules=(
        PredicateRule("vip", lambda text, state: state.get("vip", False), reason="vip customer"),
        PatternRule("billing", r"\bINV-\d{4}\b"),
        KeywordRule("tech", ("crash",)),
    ))

    def no_model(ref: str):
        raise AssertionError("the rule tier must not ask for a model")

    allowed = ["vip", "billing", "tech", "triage"]

    def decide(text: str, state: dict) -> RouteDecision:
        return asyncio.run(router.decide(text, state, allowed, no_model))

    assert decide("INV-1002 crash", {}).target == "billing"
    assert decide("INV-1002 crash", {"vip": True}).reason == "vip customer"
    assert decide("it CRASHED", {}).target == "triage"  # whole words only
    decision = decide("a Crash!", {})
    assert (decision.tier, decision.target) == ("rule", "tech")
    assert decide("hello", {}).tier == "default"
