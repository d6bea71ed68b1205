"""State reducers, including the versioned shared context under a real parallel fan-out."""

from __future__ import annotations

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from accord.agents import AgentResult, AgentSpec
from accord.graphs import Router, Step, Workflow
from accord.graphs.state import (
    HOPS_RESET,
    ContextConflict,
    WorkflowState,
    append_list,
    count_hops,
    merge_context,
    merge_records,
)


def test_merge_records_updates_fields_of_a_record():
    current = {"t1": {"status": "in_progress", "query": "q"}, "t2": {"status": "completed"}}
    merged = merge_records(current, {"t1": {"status": "completed"}, "t3": {"status": "pending"}})
    assert merged == {"t1": {"status": "completed", "query": "q"}, "t2": {"status": "completed"},
                      "t3": {"status": "pending"}}
    assert current["t1"]["status"] == "in_progress"  # inputs are not mutated
    assert merge_records(None, {"x": 1}) == {"x": 1}
    assert merge_records({"x": {"a": 1}}, {"x": 2}) == {"x": 2}  # a non-record replaces
    assert merge_records({"x": 1}, None) == {"x": 1}


def test_append_list_only_appends():
    assert append_list([1], [2, 3]) == [1, 2, 3]
    assert append_list([1], 2) == [1, 2]
    assert append_list(None, [1]) == [1]
    assert append_list([1], None) == [1]


def test_count_hops_adds_and_resets():
    assert count_hops(None, 1) == 1
    assert count_hops(4, 1) == 5
    assert count_hops(9, HOPS_RESET) == 1
    assert count_hops(3, None) == 3


def write(value, writer: str, base: int, merge: str | None = None) -> dict:
    entry = {"value": value, "writer": writer, "base_version": base}
    if merge:
        entry["merge"] = merge
    return entry


def test_merge_context_versions_each_write():
    ctx = merge_context(None, {"email": write("a@x", "billing", 0)})
    assert (ctx["email"]["value"], ctx["email"]["version"], ctx["email"]["writer"]) == ("a@x", 1, "billing")
    assert ctx["email"]["updated_at"]
    ctx = merge_context(ctx, {"email": write("b@x", "account", 1)})
    assert (ctx["email"]["value"], ctx["email"]["version"], ctx["email"]["writer"]) == ("b@x", 2, "account")


def test_a_write_from_an_old_version_without_merge_is_a_conflict():
    ctx = merge_context(merge_context(None, {"k": write(1, "a", 0)}), {"k": write(2, "b", 1)})
    with pytest.raises(ContextConflict) as info:
        merge_context(ctx, {"k": write(3, "c", 1)})
    message = str(info.value)
    assert "'k'" in message and "c wrote from version 1" in message and "b already wrote version 2" in message
    assert "declare a merge function" in message


@pytest.mark.parametrize(
    ("merge", "old", "new", "expected"),
    [
        ("append", ["a"], ["b"], ["a", "b"]),
        ("append", "a", "b", ["a", "b"]),
        ("max", 3, 7, 7),
        ("max", 9, 7, 9),
        ("last_write_wins", "old", "new", "new"),
        ("sum", 2, 3, 5),
        ("union", ["a", "b"], ["b", "c"], ["a", "b", "c"]),
    ],
)
def test_a_declared_merge_resolves_a_stale_write(merge, old, new, expected):
    ctx = merge_context(None, {"k": write(old, "a", 0)})
    ctx = merge_context(ctx, {"k": write(old, "a", 1)})  # version 2
    merged = merge_context(ctx, {"k": write(new, "b", 1, merge)})
    assert merged["k"]["value"] == expected
    assert merged["k"]["version"] == 3


def test_a_none_write_deletes_the_key():
    ctx = merge_context(None, {"k": write(1, "a", 0), "j": write(2, "a", 0)})
    assert set(merge_context(ctx, {"k": None})) == {"j"}


def fan_out(merge: str | None, values: tuple) -> StateGraph:
    """START sends to two workers in parallel; both write context key `k` from version 0."""
    graph = StateGraph(WorkflowState)

    def worker(name: str, value):
        def run(state: dict) -> dict:
            return {"context": {"k": write(value, name, 0, merge)}}

        return run

    graph.add_node("w1", worker("w1", values[0]))
    graph.add_node("w2", worker("w2", values[1]))
    graph.add_conditional_edges(START, lambda state: [Send("w1", state), Send("w2", state)], ["w1", "w2"])
    graph.add_edge("w1", END)
    graph.add_edge("w2", END)
    return graph


def test_parallel_writers_without_a_merge_conflict():
    graph = fan_out(None, (1, 2)).compile()
    with pytest.raises(ContextConflict, match="context key 'k'"):
        graph.invoke({"messages": []})


@pytest.mark.parametrize(
    ("merge", "values", "expected"),
    [("append", (["x"], ["y"]), ["x", "y"]), ("max", (5, 9), 9), ("last_write_wins", (1, 2), 2)],
)
def test_parallel_writers_with_a_declared_merge(merge, values, expected):
    out = fan_out(merge, values).compile().invoke({"messages": []})
    assert out["context"]["k"]["value"] == expected
    assert out["context"]["k"]["version"] == 2


def parallel_agents(merges: dict[str, str] | None):
    """A workflow whose plain node fans out to two agents that both write context key `k`."""

    def agent(name: str) -> AgentSpec:
        return AgentSpec(id=name, kind="rules", purpose="t", writes=("k",),
                         handler=lambda handoff, tools: AgentResult(f"{name} ok", writes={"k": [name]}))

    workflow = Workflow("fan", router=Router(default="split"), max_hops=8, context_merges=merges)
    workflow.node("split", lambda state: Step(["w1", "w2"]))
    workflow.agent(agent("w1")).agent(agent("w2"))
    workflow.transitions({"router": ["split", "END"], "split": ["w1", "w2"], "w1": ["router"],
                          "w2": ["router"]})
    return workflow.compile()


def test_workflow_fan_out_conflicts_without_a_declared_merge():
    with pytest.raises(ContextConflict, match="context key 'k'"):
        parallel_agents(None).invoke({"messages": [{"role": "user", "content": "go"}]})


def test_workflow_fan_out_merges_with_a_declared_merge():
    out = parallel_agents({"k": "append"}).invoke({"messages": [{"role": "user", "content": "go"}]})
    assert sorted(out["context"]["k"]["value"]) == ["w1", "w2"]
    assert out["context"]["k"]["version"] == 2
    assert sorted(m.content for m in out["messages"] if m.type == "ai") == ["w1 ok", "w2 ok"]
