"""A hop budget ends runaway loops with HopBudgetExceeded naming the budget."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError

from accord.agents import AgentResult, AgentSpec
from accord.checkpoints import open_saver
from accord.graphs import HopBudgetExceeded, NodeContractError, Router, Step, Workflow


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
    with open_saver("memory://") as saver:
        graph = workflow.compile(checkpointer=saver)
        cfg = config()
        for _ in range(4):  # 2 hops per request (router->a, a->END once its task is done)
            out = ask(graph, cfg)
        finished = [e for e in saver.audit_log(cfg["configurable"]["thread_id"])
                    if e.kind == "task_finished"]
    assert out["messages"][-1].content == "a done"
    assert [e.details()["task"]["status"] for e in finished] == ["completed"] * 4


def test_a_plain_node_that_returns_no_step_fails_with_a_clear_error(config):
    """A node added with ``Workflow.node`` returns a ``Step``; anything else names the node."""
    workflow = Workflow("t", router=Router(default="a"))
    workflow.node("a", lambda state: {"messages": []}).transitions({"router": ["a", "END"],
                                                                     "a": ["END"]})
    with open_saver("memory://") as saver:
        graph = workflow.compile(checkpointer=saver)
        cfg = config()
        with pytest.raises(NodeContractError, match="node 'a' returned dict"):
            ask(graph, cfg)
        record = saver.threads.get(cfg["configurable"]["thread_id"])
    assert record.status == "failed"
    assert record.error == ("node 'a' returned dict; a node added with "
                            "Workflow.node returns Step(goto=..., update={...})")
