"""Run time never follows an undeclared transition: it is recorded and sent to the error path."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from accord.agents import AgentResult, AgentSpec
from accord.graphs import AccordError, Router, Step, Workflow

TABLE = {"router": ["a", "END"], "a": ["b"], "b": ["c", "END"], "c": ["END"]}


def ends(name: str):
    return lambda state: Step("END", {"messages": [AIMessage(f"{name} ran", name=name)]})


def build(error_node: str | None) -> Workflow:
    """`a` proposes `c`, but may only go to `b` (and the error path)."""
    workflow = Workflow("t", router=Router(default="a"), error_node=error_node)
    workflow.node("a", lambda state: Step("c", {"messages": [AIMessage("a wants c", name="a")]}))
    workflow.node("b", ends("b")).node("c", ends("c"))
    table = dict(TABLE)
    if error_node:
        workflow.node(error_node, ends(error_node))
        table[error_node] = ["END"]
    return workflow.transitions(table)


def ask(graph) -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": "go"}]})


def test_illegal_transition_is_recorded_and_goes_to_the_error_node():
    out = ask(build("oops").compile())
    [illegal] = [e for e in out["audit"] if e["kind"] == "illegal_transition"]
    assert (illegal["node"], illegal["target"]) == ("a", "c")
    assert [e["error"] for e in out["errors"]] == ["illegal transition a -> c"]
    moves = [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "transition"]
    assert moves == [("router", "a"), ("a", "oops"), ("oops", "__end__")]
    names = [m.name for m in out["messages"] if isinstance(m, AIMessage)]
    assert names == ["a", "oops"]  # c never ran
    assert "c ran" not in [m.content for m in out["messages"]]


def test_illegal_transition_without_an_error_node_raises():
    graph = build(None).compile()
    with pytest.raises(AccordError, match="illegal transition a -> c and no error path is declared"):
        ask(graph)


def test_ending_early_is_illegal_too():
    workflow = Workflow("t", router=Router(default="a"), error_node="oops")
    workflow.node("a", lambda state: Step("END")).node("b", ends("b")).node("oops", ends("oops"))
    workflow.transitions({"router": ["a"], "a": ["b"], "b": ["END"], "oops": ["END"]})
    out = ask(workflow.compile())
    assert [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "illegal_transition"] == [
        ("a", "__end__")
    ]
    assert out["messages"][-1].content == "oops ran"


def test_an_agent_handoff_the_router_may_not_follow_goes_to_the_error_node():
    """An agent that only returns to the router suggests a node the router may not go to:
    refused at the agent (named in the record), never blamed on the router."""
    spec = AgentSpec(id="desk", kind="rules", purpose="t",
                     handler=lambda h, t: AgentResult("over to c", status="handoff", handoff_to="c"))
    workflow = Workflow("t", router=Router(default="desk"), error_node="oops", max_hops=8)
    workflow.agent(spec).node("c", ends("c")).node("oops", ends("oops"))
    workflow.transitions({"router": ["desk", "END"], "desk": ["router"], "c": ["END"],
                          "oops": ["END", "c"]})
    out = ask(workflow.compile())
    assert not [e for e in out["audit"] if e["kind"] == "route" and e["tier"] == "handoff"]
    assert [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "illegal_transition"] == [
        ("desk", "c")
    ]
    moves = [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "transition"]
    assert moves[:2] == [("router", "desk"), ("desk", "oops")]
    assert out["messages"][-1].content == "oops ran"
    assert "c ran" not in [m.content for m in out["messages"]]
