"""A hop budget ends runaway loops with HopBudgetExceeded naming the budget."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError

from accord.agents import AgentResult, AgentSpec
from accord.graphs import HopBudgetExceeded, Router, Step, Workflow


def ask(graph, config=None) -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": "go"}]}, config)


@pytest.mark.parametrize("budget", [5, 40])  # 40 hops: more than langgraph's old default limit of 25
def test_plain_nodes_cycling_hit_the_budget(budget):
    workflow = Workflow("loop", router=Router(default="a"), max_hops=budget)
    workflow.node("a", lambda s: Step("b")).node("b", lambda s: Step("a"))
    workflow.transitions({"router": ["a", "END"], "a": ["b", "END"], "b": ["a", "END"]})
    with pytest.raises(HopBudgetExceeded) as info:
        ask(workflow.compile())
    assert not isinstance(info.value, GraphRecursionError)
    assert info.value.budget == budget
    assert f"hop budget of {budget} exhausted" in str(info.value)
    assert {info.value.node, info.value.target} == {"a", "b"}


def handing_off(to: str):
    return lambda handoff, tools: AgentResult(f"not mine, ask {to}", status="handoff", handoff_to=to)


def test_agents_handing_off_back_and_forth_hit_the_budget(config):
    workflow = Workflow("pingpong", router=Router(default="ping"), max_hops=7)
    for me, other in (("ping", "pong"), ("pong", "ping")):
        workflow.agent(AgentSpec(id=me, kind="rules", purpose="t", handler=handing_off(other)))
    workflow.transitions({"router": ["ping", "pong", "END"], "ping": ["router"], "pong": ["router"]})
    graph = workflow.compile(checkpointer=InMemorySaver())
    cfg = config()
    with pytest.raises(HopBudgetExceeded, match="hop budget of 7 exhausted"):
        ask(graph, cfg)
    audit = graph.get_state(cfg).values["audit"]
    handoffs = [e["target"] for e in audit if e["kind"] == "route" and e["tier"] == "handoff"]
    assert handoffs[:3] == ["pong", "ping", "pong"]
    assert max(e["hop"] for e in audit if e["kind"] == "transition") == 7


def test_the_budget_is_per_request(config, completes):
    """Each new request on a thread starts a fresh count."""
    workflow = Workflow("t", router=Router(default="a"), max_hops=3)
    workflow.node("a", completes("a")).transitions({"router": ["a", "END"], "a": ["router"]})
    graph = workflow.compile(checkpointer=InMemorySaver())
    cfg = config()
    for _ in range(4):  # 3 hops per request (router->a, a->router, router->END): 12 in all
        out = ask(graph, cfg)
    assert out["messages"][-1].content == "a done"
    assert len([t for t in out["tasks"].values() if t["status"] == "completed"]) == 4
