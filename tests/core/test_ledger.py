"""The tool ledger: a re-run step sees the tool results its first run saw, from accord's saver."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from accord.agents import AgentResult, AgentSpec, read_only
from accord.checkpoints import open_saver
from accord.graphs import KeywordRule, Router, Workflow


def build(calls: list[int], *, reads_only: bool = False) -> Workflow:
    @tool
    def stock(item: str) -> dict:
        """How many items are left (changes every call)."""
        calls.append(1)
        return {"item": item, "left": 10 - len(calls)}

    if reads_only:
        stock = read_only(stock)

    def clerk(handoff, tools):
        return AgentResult(f"{tools('stock', item='pen')['left']} pens left")

    return (
        Workflow("shop", router=Router(default="clerk", rules=(KeywordRule("clerk", ("pen",)),)),
                 max_hops=6, tools=[stock])
        .agent(AgentSpec(id="clerk", purpose="Counts stock", kind="rules", handler=clerk, tools=("stock",)))
        .transitions({"router": ["clerk", "END"], "clerk": ["router"]})
    )


def replay_clerk(graph, config) -> str:
    before = next(s for s in graph.get_state_history(config) if s.next == ("clerk",))
    graph.invoke(None, before.config)
    return graph.get_state(config).values["messages"][-1].content


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_a_re_run_step_gets_recorded_results_from_the_ledger(scheme, tmp_path) -> None:
    calls: list[int] = []
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path}/a.db"
    with open_saver(url) as saver:
        graph = build(calls).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "s1"}}
        graph.invoke({"messages": [{"role": "user", "content": "any pen?"}]}, config)
        assert graph.get_state(config).values["messages"][-1].content == "9 pens left"
        assert replay_clerk(graph, config) == "9 pens left"  # the recorded read, not a new one
        assert len(calls) == 1


def test_a_foreign_saver_keeps_the_ledger_in_the_process() -> None:
    """LangGraph's own InMemorySaver: the engine keeps the ledger beside it, in memory."""
    calls: list[int] = []
    graph = build(calls).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "s2"}}
    graph.invoke({"messages": [{"role": "user", "content": "any pen?"}]}, config)
    assert replay_clerk(graph, config) == "9 pens left"
    assert len(calls) == 1


def test_each_request_reads_afresh(tmp_path) -> None:
    calls: list[int] = []
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = build(calls).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "s3"}}
        for expected in ("9 pens left", "8 pens left"):
            graph.invoke({"messages": [{"role": "user", "content": "any pen?"}]}, config)
            assert graph.get_state(config).values["messages"][-1].content == expected


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_a_read_only_tool_is_recorded_with_the_next_write_not_on_its_own(scheme, tmp_path,
                                                                          monkeypatch) -> None:
    """A tool with no idempotency of its own costs a transaction before the step goes on; one
    marked read_only is recorded in the step's own write, and a replay still sees its result."""
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path}/a.db"
    flushes: dict[bool, int] = {}
    for reads_only in (False, True):
        calls: list[int] = []
        with open_saver(url) as saver:
            count = [0]
            flush = type(saver)._flush

            def counted(self, *args, _flush=flush, _count=count, **kwargs):
                _count[0] += 1
                return _flush(self, *args, **kwargs)

            monkeypatch.setattr(type(saver), "_flush", counted)
            graph = build(calls, reads_only=reads_only).compile(checkpointer=saver)
            config = {"configurable": {"thread_id": f"r-{reads_only}"}}
            graph.invoke({"messages": [{"role": "user", "content": "any pen?"}]}, config)
            flushes[reads_only] = count[0]
            monkeypatch.undo()
            assert replay_clerk(graph, config) == "9 pens left" and len(calls) == 1
    assert flushes[True] == flushes[False] - 1


def looping(calls: list[int]) -> Workflow:
    """A clerk that a bell sends back to once: two visits of one task."""
    @read_only
    @tool
    def stock(item: str) -> dict:
        """How many items are left (changes every call)."""
        calls.append(1)
        return {"item": item, "left": 10 - len(calls)}

    def clerk(handoff, tools):
        left = tools("stock", item="pen")["left"]
        return AgentResult(f"{left} pens left", status="handoff", handoff_to="bell")

    def bell(state):
        from accord.graphs import Step

        rounds = sum(1 for m in state["messages"] if m.name == "clerk")
        return Step("clerk" if rounds < 2 else "END", {})

    return (
        Workflow("shop", router=Router(default="clerk"), max_hops=8, tools=[stock])
        .agent(AgentSpec(id="clerk", purpose="Counts stock", kind="rules", handler=clerk, tools=("stock",)))
        .node("bell", bell)
        .transitions({"router": ["clerk", "END"], "clerk": ["bell"], "bell": ["clerk", "END"]})
    )


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_an_agent_visited_again_reads_afresh_and_a_replay_of_a_visit_sees_its_reads(scheme, tmp_path):
    calls: list[int] = []
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path}/a.db"
    with open_saver(url) as saver:
        graph = looping(calls).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "s1"}}
        out = graph.invoke({"messages": [{"role": "user", "content": "any pen?"}]}, config)
        assert [m.content for m in out["messages"] if m.name == "clerk"] == ["9 pens left", "8 pens left"]
        second = [s for s in graph.get_state_history(config) if s.next == ("clerk",)][0]
        graph.invoke(None, second.config)  # replay the second visit: it sees what it saw
        replayed = graph.get_state(config).values["messages"]
        assert [m.content for m in replayed if m.name == "clerk"] == ["9 pens left", "8 pens left"]
        assert len(calls) == 2
