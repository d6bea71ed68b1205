"""The compiled graph's drawing shows exactly the transition table (what Studio draws)."""

from __future__ import annotations

import pytest
from langgraph.graph import END, START

from accord.graphs import Router, Step, Workflow
from accord.graphs.support import TRANSITIONS, build_support


@pytest.mark.parametrize("use_llm", [False, True])
def test_support_drawing_edges_equal_the_table(support_db, use_llm):
    workflow = build_support(db=support_db, use_llm=use_llm)
    drawing = workflow.compile().get_graph()
    edges = {(e.source, e.target) for e in drawing.edges}
    assert (START, "router") in edges
    assert edges - {(START, "router")} == workflow.table.pairs()
    assert all(e.conditional for e in drawing.edges if e.source != START)


def test_support_table_is_the_declared_transitions_plus_the_return_error_and_finish_paths(support_db):
    workflow = build_support(db=support_db, use_llm=False)
    declared = {(s, END if t == "END" else t) for s, ts in TRANSITIONS.items() for t in ts}
    error_path = {(s, "human_triage") for s in TRANSITIONS if s != "human_triage"}
    # a node that returns to the router may end the run once its task is finished
    finish_path = {(s, END) for s, ts in TRANSITIONS.items() if "router" in ts}
    assert finish_path == {("billing", END), ("tech", END), ("account", END),
                           ("refund_approval", END)}
    # an approval node returns the decision to the agent that proposed the action
    return_path = {("refund_approval", "billing")}
    assert workflow.table.pairs() == declared | return_path | error_path | finish_path


def test_mermaid_draws_every_transition_and_nothing_else(support_db):
    workflow = build_support(db=support_db, use_llm=False)
    mermaid = workflow.mermaid()
    pairs = workflow.table.pairs()
    for src, dst in pairs:
        assert f"\t{src} -.-> {dst};" in mermaid, (src, dst)
    arrows = [line for line in mermaid.splitlines() if "-->" in line or "-.->" in line]
    assert len(arrows) == len(pairs) + 1  # plus __start__ --> router
    assert "\t__start__ --> router;" in mermaid


def test_a_small_workflow_draws_its_table_with_error_path():
    workflow = Workflow("t", router=Router(default="a"), error_node="oops")
    workflow.node("a", lambda s: Step("END")).node("oops", lambda s: Step("END"))
    workflow.transitions({"router": ["a"], "a": ["END"], "oops": ["END"]})
    edges = {(e.source, e.target) for e in workflow.compile().get_graph().edges}
    assert edges == {(START, "router"), ("router", "a"), ("router", "oops"), ("a", END),
                     ("a", "oops"), ("oops", END)}
