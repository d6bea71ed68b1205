"""Build time rejects a bad workflow with a WorkflowBuildError naming the node."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from accord.agents import AgentResult, AgentSpec, ApprovalPolicy
from accord.graphs import KeywordRule, Router, Step, Workflow, WorkflowBuildError


def finish(state: dict) -> Step:
    return Step("END", {"messages": [AIMessage("done")]})


def plain(*names: str, router: Router | None = None, **kwargs) -> Workflow:
    """A workflow of plain nodes that end the run."""
    workflow = Workflow("t", router=router or Router(default=names[0]), **kwargs)
    for name in names:
        workflow.node(name, finish)
    return workflow


def rejected(workflow: Workflow) -> WorkflowBuildError:
    with pytest.raises(WorkflowBuildError) as info:
        workflow.compile()
    return info.value


def rules_agent(agent_id: str) -> AgentSpec:
    return AgentSpec(id=agent_id, kind="rules", purpose="test", handler=lambda h, t: AgentResult("ok"))


def test_a_valid_workflow_compiles_and_runs():
    graph = plain("a").transitions({"router": ["a", "END"], "a": ["END"]}).compile()
    out = graph.invoke({"messages": [{"role": "user", "content": "hi"}]})
    assert out["messages"][-1].content == "done"


def test_unknown_target_names_the_target():
    error = rejected(plain("a").transitions({"router": ["a", "END"], "a": ["ghost"]}))
    assert error.node == "ghost"
    assert "node 'a' has an unknown target 'ghost'" in str(error)


def test_transitions_from_an_unknown_node_are_rejected():
    error = rejected(plain("a").transitions({"router": ["a"], "a": ["END"], "nobody": ["END"]}))
    assert error.node == "nobody"
    assert "unknown node 'nobody'" in str(error)


def test_node_unreachable_from_start():
    workflow = plain("a", "island").transitions({"router": ["a"], "a": ["END"], "island": ["END"]})
    error = rejected(workflow)
    assert error.node == "island"
    assert str(error) == "node 'island' is unreachable from START"


def test_node_that_cannot_reach_end():
    workflow = plain("a", "trap", max_hops=5).transitions(
        {"router": ["a", "END"], "a": ["trap", "END"], "trap": ["trap"]}
    )
    error = rejected(workflow)
    assert error.node == "trap"
    assert str(error) == "node 'trap' cannot reach END"


def test_node_without_outgoing_transitions():
    error = rejected(plain("a", "b").transitions({"router": ["a", "b"], "a": ["END"]}))
    assert error.node == "b"
    assert "no outgoing transitions" in str(error)


def test_cycle_without_hop_budget_is_rejected_and_accepted_with_one():
    table = {"router": ["a", "END"], "a": ["router", "END"]}
    error = rejected(plain("a", max_hops=None).transitions(table))
    assert error.node in ("a", "router")
    assert "cycle a -> router -> a" in str(error) or "cycle router -> a -> router" in str(error)
    assert "max_hops" in str(error)
    plain("a", max_hops=4).transitions(table).compile()  # the same graph with a budget is fine


def test_agent_with_no_way_in():
    workflow = plain("a").agent(rules_agent("orphan")).transitions(
        {"router": ["a", "END"], "a": ["END"], "orphan": ["END"]}
    )
    error = rejected(workflow)
    assert error.node == "orphan"
    assert "agent 'orphan' has no way in" in str(error)


def test_router_rule_targeting_a_node_the_router_may_not_go_to():
    router = Router(default="a", rules=(KeywordRule("b", ("bee",)),))
    workflow = plain("a", "b", router=router).transitions(
        {"router": ["a", "END"], "a": ["b", "END"], "b": ["END"]}
    )
    error = rejected(workflow)
    assert error.node == "b"
    assert "router rule targets 'b', which the router may not go to" in str(error)


def test_router_default_must_be_an_allowed_target():
    workflow = plain("a", "b", router=Router(default="b")).transitions(
        {"router": ["a", "END"], "a": ["b"], "b": ["END"]}
    )
    assert rejected(workflow).node == "b"


def test_approval_policy_naming_an_unknown_approval_node():
    policy = ApprovalPolicy(tool="pay", approval_node="sign_off")
    workflow = plain("a", approvals=[policy]).transitions({"router": ["a", "END"], "a": ["END"]})
    error = rejected(workflow)
    assert error.node == "sign_off"
    assert "approval policy for 'pay' names unknown approval node 'sign_off'" in str(error)


def test_error_node_must_be_a_node():
    workflow = plain("a", error_node="oops").transitions({"router": ["a", "END"], "a": ["END"]})
    error = rejected(workflow)
    assert error.node == "oops"
    assert "error node 'oops' is not a node" in str(error)


def test_error_node_needs_no_declared_edge_into_it():
    """The error path leads into the error node from every node, so it counts as reachable."""
    workflow = plain("a", "oops", error_node="oops").transitions(
        {"router": ["a", "END"], "a": ["END"], "oops": ["END"]}
    )
    graph = workflow.compile()
    assert ("a", "oops") in workflow.table.pairs()
    assert {(e.source, e.target) for e in graph.get_graph().edges} >= {("a", "oops"), ("router", "oops")}


def test_agent_falling_back_to_an_unknown_agent():
    spec = AgentSpec(id="helper", kind="rules", purpose="t", handler=lambda h, t: AgentResult("ok"),
                     fallback="ghost_agent")
    workflow = plain("a").agent(spec).transitions(
        {"router": ["a", "helper", "END"], "a": ["END"], "helper": ["END"]}
    )
    error = rejected(workflow)
    assert error.node == "helper"
    assert "unknown agent 'ghost_agent'" in str(error)


def test_a_node_declared_twice():
    workflow = plain("a")
    with pytest.raises(WorkflowBuildError) as info:
        workflow.node("a", finish)
    assert info.value.node == "a"
    with pytest.raises(WorkflowBuildError) as info:
        workflow.node("router", finish)
    assert info.value.node == "router"
