"""Agents get a query-only handoff with the context keys they read, and write only keys they own."""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver

from accord.agents import AgentResult, AgentSpec, Handoff
from accord.graphs import KeywordRule, Router, Workflow

SEEN: list[Handoff] = []


def writer(handoff: Handoff, tools) -> AgentResult:
    SEEN.append(handoff)
    return AgentResult("noted", writes={"customer_email": f"user{len(SEEN)}@example.com",
                                        "invoice": "INV-1002"})


def reader(handoff: Handoff, tools) -> AgentResult:
    SEEN.append(handoff)
    return AgentResult(f"email is {handoff.context.get('customer_email')}")


def build():
    workflow = Workflow("w", router=Router(default="writer", rules=(KeywordRule("reader", ("read",)),)),
                        max_hops=6)
    workflow.agent(AgentSpec(id="writer", kind="rules", purpose="t", handler=writer,
                             writes=("customer_email",)))
    workflow.agent(AgentSpec(id="reader", kind="rules", purpose="t", handler=reader,
                             reads=("customer_email",)))
    workflow.transitions({"router": ["writer", "reader", "END"], "writer": ["router"], "reader": ["router"]})
    return workflow.compile(checkpointer=InMemorySaver())


def ask(graph, text, cfg):
    return graph.invoke({"messages": [{"role": "user", "content": text}]}, cfg)


def test_owned_key_is_applied_and_a_foreign_key_is_rejected(config):
    SEEN.clear()
    graph, cfg = build(), config()
    out = ask(graph, "remember me", cfg)
    assert out["context"]["customer_email"]["value"] == "user1@example.com"
    assert out["context"]["customer_email"]["version"] == 1
    assert out["context"]["customer_email"]["writer"] == "writer"
    assert "invoice" not in out["context"]
    [rejected] = [e for e in out["audit"] if e["kind"] == "write_rejected"]
    assert (rejected["agent"], rejected["key"], rejected["node"]) == ("writer", "invoice", "writer")
    assert [e["error"] for e in out["errors"]] == ["writer may not write 'invoice'"]
    assert out["messages"][-1].content == "noted"  # the agent's work still counts

    out = ask(graph, "remember me again", cfg)
    entry = out["context"]["customer_email"]
    assert (entry["value"], entry["version"]) == ("user2@example.com", 2)


def test_handoff_is_query_only_with_declared_reads(config):
    SEEN.clear()
    graph, cfg = build(), config()
    ask(graph, "remember me", cfg)
    out = ask(graph, "please read it back", cfg)
    assert out["messages"][-1].content == "email is user1@example.com"
    first, second = SEEN
    assert first.context == {}  # the writer declares no reads
    assert second.query == "please read it back"  # the task, not the whole conversation
    assert second.context == {"customer_email": "user1@example.com"}
    assert second.thread_id == cfg["configurable"]["thread_id"]
    assert second.task_id == out["active_task"]
