"""Stale shared context expires when the next request starts (Workflow(context_ttl=...))."""

from __future__ import annotations

from datetime import timedelta

from langgraph.checkpoint.memory import InMemorySaver

from accord.agents import AgentResult, AgentSpec
from accord.graphs import Router, Workflow


def remember(handoff, tools):
    seen = handoff.context.get("note")
    return AgentResult(f"seen={seen}", writes={"note": handoff.query})


def graph(ttl: timedelta | None):
    spec = AgentSpec(id="memo", purpose="remembers", kind="rules", handler=remember,
                     reads=("note",), writes=("note",))
    return (Workflow("memo", router=Router(default="memo"), max_hops=5, context_ttl=ttl)
            .agent(spec).transitions({"router": ["memo", "END"], "memo": ["router"]})
            .compile(checkpointer=InMemorySaver()))


def ask(g, text: str) -> str:
    out = g.invoke({"messages": [{"role": "user", "content": text}]}, {"configurable": {"thread_id": "m"}})
    return out["messages"][-1].content


def test_fresh_context_is_handed_on() -> None:
    g = graph(timedelta(hours=1))
    assert ask(g, "first") == "seen=None"
    assert ask(g, "second") == "seen=first"


def test_context_older_than_the_ttl_expires() -> None:
    g = graph(timedelta(0))
    assert ask(g, "first") == "seen=None"
    assert ask(g, "second") == "seen=None"  # expired before routing the second request
    config = {"configurable": {"thread_id": "m"}}
    assert g.get_state(config).values["context"]["note"]["value"] == "second"
