"""An agent chooses its next node among the successors the table declares for it."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START

from accord.agents import AgentResult, AgentSpec
from accord.agents.models import ModelResolver
from accord.graphs import Router, Step, Workflow
from accord.testing import ScriptedChatModel, ToolCallReply

TABLE = {"router": ["a", "d", "END"], "a": ["router", "b", "c"], "b": ["END"], "c": ["END"],
         "d": ["END"], "oops": ["END"]}


def ends(name: str):
    return lambda state: Step("END", {"messages": [AIMessage(f"{name} ran", name=name)]})


def workflow(a: AgentSpec, models: ModelResolver | None = None) -> Workflow:
    """`a` may hand over to b or c (or back to the router), never to d (the router may)."""
    flow = Workflow("h", router=Router(default="a"), error_node="oops", max_hops=8, models=models)
    flow.agent(a)
    for name in ("b", "c", "d", "oops"):
        flow.node(name, ends(name))
    return flow.transitions(TABLE)


def rules(to: str) -> AgentSpec:
    return AgentSpec(id="a", kind="rules", purpose="t",
                     handler=lambda h, t: AgentResult(f"over to {to}", status="handoff",
                                                      handoff_to=to))


def ask(graph) -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": "go"}]})


def moves(out: dict) -> list[tuple[str, str]]:
    return [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "transition"]


def ran(out: dict) -> list[str]:
    return [m.content for m in out["messages"] if isinstance(m, AIMessage) and m.name != "a"]


@pytest.mark.parametrize("to", ["b", "c"])
def test_a_rule_agent_hands_over_to_a_declared_successor(to):
    seen = []

    def choose(handoff, tools) -> AgentResult:
        seen.append(handoff.successors)
        return AgentResult(f"over to {to}", status="handoff", handoff_to=to)

    out = ask(workflow(AgentSpec(id="a", kind="rules", purpose="t", handler=choose)).compile())
    assert seen == [("b", "c")]
    assert moves(out) == [("router", "a"), ("a", to), (to, END)]
    assert ran(out) == [f"{to} ran"]
    assert not [e for e in out["audit"] if e["kind"] == "illegal_transition"]
    assert out["tasks"][out["active_task"]]["agent"] == to


def test_a_handoff_to_an_undeclared_node_is_refused_naming_the_agent():
    """The router may go to d, but a may not: d never runs, the router is not blamed."""
    out = ask(workflow(rules("d")).compile())
    illegal = [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "illegal_transition"]
    assert illegal == [("a", "d")]
    assert [e["error"] for e in out["errors"]] == ["illegal transition a -> d"]
    assert moves(out) == [("router", "a"), ("a", "oops"), ("oops", END)]
    assert ran(out) == ["oops ran"]
    assert out["tasks"][out["active_task"]]["handoff_to"] is None


def test_an_agent_that_only_returns_to_the_router_hands_on_through_it():
    spec = rules("d")
    flow = Workflow("h", router=Router(default="a"), error_node="oops", max_hops=8).agent(spec)
    for name in ("d", "oops"):
        flow.node(name, ends(name))
    out = ask(flow.transitions({"router": ["a", "d", "END"], "a": ["router"], "d": ["END"],
                                "oops": ["END"]}).compile())
    assert moves(out) == [("router", "a"), ("a", "router"), ("router", "d"), ("d", END)]
    assert [e["tier"] for e in out["audit"] if e["kind"] == "route"] == ["default", "handoff"]


def test_a_handoff_the_router_may_not_follow_is_refused_at_the_agent():
    flow = Workflow("h", router=Router(default="a"), error_node="oops", max_hops=8)
    flow.agent(rules("nowhere")).node("oops", ends("oops"))
    out = ask(flow.transitions({"router": ["a", "END"], "a": ["router"],
                                "oops": ["END"]}).compile())
    illegal = [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "illegal_transition"]
    assert illegal == [("a", "nowhere")]
    assert ran(out) == ["oops ran"]


def llm_agent() -> AgentSpec:
    return AgentSpec(id="a", kind="llm", purpose="Sorts requests", model="small")


def scripted(*replies) -> tuple[ScriptedChatModel, ModelResolver]:
    model = ScriptedChatModel(list(replies))
    return model, ModelResolver(models={"*": model})


def test_an_llm_agent_hands_over_through_its_handoff_tool():
    model, models = scripted(ToolCallReply("transfer_to_c", {"reason": "c knows"}))
    out = ask(workflow(llm_agent(), models).compile())
    assert sorted(model.bound_tools) == ["transfer_to_b", "transfer_to_c"]
    assert model.calls == 1  # the handoff ends the agent's turn
    assert moves(out) == [("router", "a"), ("a", "c"), ("c", END)]
    assert ran(out) == ["c ran"]
    [call] = [e for e in out["audit"] if e["kind"] == "tool_call"]
    assert call["tool"] == "transfer_to_c"


def test_an_llm_agent_cannot_hand_over_to_an_undeclared_node():
    """There is no transfer_to_d tool: the call is answered as an unknown tool and recorded."""
    model, models = scripted(ToolCallReply("transfer_to_d", {"reason": "d"}), "I will answer myself.")
    out = ask(workflow(llm_agent(), models).compile())
    assert "transfer_to_d" not in model.bound_tools
    [call] = [e for e in out["audit"] if e["kind"] == "tool_call"]
    assert (call["tool"], call["status"]) == ("transfer_to_d", "error")
    assert "is not a valid tool" in call["result"]
    assert "d ran" not in ran(out)
    assert ("a", "d") not in moves(out)
    assert out["tasks"][out["active_task"]]["status"] == "completed"


def test_an_agent_with_successors_b_and_c_draws_exactly_those_plus_error_and_finish_paths():
    edges = {(e.source, e.target) for e in workflow(rules("b")).compile().get_graph().edges}
    assert {t for s, t in edges if s == "a"} == {"router", "b", "c", "oops", END}
    mermaid = workflow(rules("b")).mermaid()
    drawn = {line.strip().split(" ")[-1].rstrip(";") for line in mermaid.splitlines()
             if line.strip().startswith("a -.-> ")}
    assert drawn == {"router", "b", "c", "oops", "__end__"}
    assert (START, "router") in edges


@pytest.mark.parametrize("entry", ["ainvoke", "astream", "stream"])
def test_the_check_holds_on_every_entry_point_on_accords_saver(tmp_path, entry):
    import asyncio

    from accord.checkpoints import open_saver

    request = {"messages": [{"role": "user", "content": "go"}]}
    with open_saver(f"sqlite:///{tmp_path}/h.db") as saver:
        graph = workflow(rules("d")).compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": f"h-{entry}"}}
        if entry == "ainvoke":
            asyncio.run(graph.ainvoke(request, cfg))
        elif entry == "astream":
            async def drain() -> None:
                async for _ in graph.astream(request, cfg):
                    pass
            asyncio.run(drain())
        else:
            list(graph.stream(request, cfg))
        events = saver.audit_log(cfg["configurable"]["thread_id"])
    illegal = [(e.details()["node"], e.details()["target"]) for e in events
               if e.kind == "illegal_transition"]
    assert illegal == [("a", "d")]
    moves = [(e.details()["node"], e.details()["target"]) for e in events if e.kind == "transition"]
    assert ("a", "oops") in moves and ("a", "d") not in moves


def test_a_finished_agent_without_router_edge_ends_when_it_may():
    """A screener that may hand over to `offer` or end: finishing a task without naming a
    successor ends the run, it does not walk into the next agent."""
    flow = Workflow("s", router=Router(default="screen"), error_node="oops", max_hops=8)
    flow.agent(AgentSpec(id="screen", kind="rules", purpose="t",
                         handler=lambda h, t: AgentResult("not a fit")))
    flow.node("offer", ends("offer")).node("oops", ends("oops"))
    out = ask(flow.transitions({"router": ["screen", "END"], "screen": ["offer", "END"],
                                "offer": ["END"], "oops": ["END"]}).compile())
    assert moves(out) == [("router", "screen"), ("screen", END)]
    assert ran(out) == ["not a fit"]  # the screener spoke; `offer` never ran
