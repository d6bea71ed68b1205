"""The support example with LLM agents driven by a ScriptedChatModel: routing, tool calls and
the approval of a held refund (approve / reject / edit)."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from accord.agents import ModelResolver
from accord.graphs.support import build_support
from accord.testing import ScriptedChatModel, StructuredReply, ToolCallReply

# Matches no routing rule, so the LLM tier classifies it.
BILLED_TWICE = "I was billed twice last month and want my money back"

SCRIPT = [
    StructuredReply({"target": "billing", "confidence": 0.92, "reason": "a double charge"}),
    ToolCallReply("get_invoice", {"invoice_id": "INV-1002"}),
    ToolCallReply("issue_refund", {"invoice_id": "INV-1002", "amount": 480, "reason": "charged twice"}),
    # the loop stops at the held call; after the decision it continues with this answer
    "Here is where your refund of INV-1002 stands.",
]


@pytest.fixture
def paused(support_db, config):
    """A thread whose LLM billing agent asked to refund 480 (held for approval)."""
    model = ScriptedChatModel(SCRIPT)
    workflow = build_support(db=support_db, use_llm=True, models=ModelResolver(models={"*": model}))
    graph = workflow.compile(checkpointer=InMemorySaver())
    cfg = config()
    out = graph.invoke({"messages": [{"role": "user", "content": BILLED_TWICE}]}, cfg)
    return graph, cfg, model, out


def decide(graph, cfg, **decision) -> dict:
    return graph.invoke(Command(resume=decision), cfg)


def test_llm_route_and_tool_calls_hold_the_refund(paused, support_db):
    graph, cfg, model, out = paused
    route = next(e for e in out["audit"] if e["kind"] == "route")
    assert (route["tier"], route["target"], route["confidence"]) == ("llm", "billing", 0.92)
    assert model.calls == 3  # the loop stopped at the held call: no model call about it
    assert model.bound_tools == ["lookup_customer", "get_invoice", "issue_refund"]
    calls = [e["tool"] for e in out["audit"] if e["kind"] == "tool_call"]
    assert calls == ["get_invoice", "issue_refund"]
    held = next(e for e in out["audit"] if e["kind"] == "tool_call" and e["tool"] == "issue_refund")
    assert "held for human approval" in held["result"]
    assert out["messages"][-1].content == "issue_refund awaits approval."
    assert [t["status"] for t in out["tasks"].values()] == ["awaiting_approval"]
    request = graph.get_state(cfg).interrupts[0].value
    [action] = request["action_requests"]
    assert (request["agent"], action["name"], action["args"]["amount"]) == ("billing", "issue_refund", 480)
    assert support_db.refunds() == []  # held, not executed


def test_the_agent_sees_the_handoff_not_the_conversation(paused):
    _, _, model, _ = paused
    agent_prompt = model.call_log[1]
    assert agent_prompt[0].type == "system" and "billing specialist" in agent_prompt[0].content
    assert agent_prompt[1].content.startswith("Task ") and BILLED_TWICE in agent_prompt[1].content
    assert len(agent_prompt) == 2


def test_approve_records_the_refund_exactly_once(paused, support_db):
    graph, cfg, model, _ = paused
    out = decide(graph, cfg, decision="approve", by="alice")
    refunds = support_db.refunds()
    assert [(r["invoice_id"], r["amount"]) for r in refunds] == [("INV-1002", 480.0)]
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]
    # the agent's loop continued with the refund as the tool's answer; no second interrupt
    assert model.calls == 4
    tool_answer = model.call_log[3][-1]
    assert tool_answer.type == "tool" and f'"refund_id": {refunds[0]["id"]}' in tool_answer.content
    assert out["messages"][-1].content == SCRIPT[-1]
    assert [e["tier"] for e in out["audit"] if e["kind"] == "route"] == ["llm", "finish"]
    [human] = [e for e in out["audit"] if e["kind"] == "human_decision"]
    assert (human["by"], human["result"]["refund_id"]) == ("alice", refunds[0]["id"])
    assert graph.get_state(cfg).next == ()


def test_reject_refunds_nothing_and_reaches_the_agent(paused, support_db):
    graph, cfg, model, _ = paused
    out = decide(graph, cfg, decision="reject", reason="not a duplicate", by="alice")
    assert support_db.refunds() == []
    rejected = model.call_log[3][-1]
    assert (rejected.type, rejected.status) == ("tool", "error")
    assert "rejected the tool call for `issue_refund` with reason: not a duplicate" in rejected.content
    assert out["messages"][-1].content == SCRIPT[-1]  # the agent answered, knowing why
    assert out["pending"] is None and graph.get_state(cfg).next == ()


def test_edit_refunds_the_edited_amount(paused, support_db):
    graph, cfg, _, _ = paused
    out = decide(graph, cfg, decision="edit", args={"amount": 200}, by="bob")
    assert [(r["invoice_id"], r["amount"], r["reason"]) for r in support_db.refunds()] == [
        ("INV-1002", 200.0, "charged twice")]
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]
    [human] = [e for e in out["audit"] if e["kind"] == "human_decision"]
    assert (human["decision"], human["args"]["amount"]) == ("edit", 200)


def test_a_small_llm_refund_runs_without_approval(support_db, config):
    model = ScriptedChatModel([
        ToolCallReply("issue_refund", {"invoice_id": "INV-1001", "amount": 49, "reason": "unused"}),
        "Refunded $49.",
    ])
    workflow = build_support(db=support_db, use_llm=True, models=ModelResolver(models={"*": model}))
    graph = workflow.compile(checkpointer=InMemorySaver())
    cfg = config()
    out = graph.invoke({"messages": [{"role": "user", "content": "refund INV-1001"}]}, cfg)
    assert graph.get_state(cfg).next == ()
    assert [(r["invoice_id"], r["amount"]) for r in support_db.refunds()] == [("INV-1001", 49.0)]
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]
    assert model.calls == 2  # the rule tier routed; the agent made two calls


def test_agent_middleware_slot_runs_inside_the_llm_agent(tmp_path) -> None:
    """Middleware given to Workflow.agent wraps the LLM agent's own model calls."""
    from langchain.agents.middleware import AgentMiddleware
    from langgraph.checkpoint.memory import InMemorySaver

    from accord.agents import ModelResolver
    from accord.graphs.support import build_support
    from accord.testing import ScriptedChatModel

    seen: list[int] = []

    class Count(AgentMiddleware):
        async def awrap_model_call(self, request, handler):
            seen.append(len(request.messages))
            return await handler(request)

    model = ScriptedChatModel(["Try clearing the cache."])
    workflow = build_support(db=str(tmp_path / "s.db"), use_llm=True,
                             models=ModelResolver(models={"*": model}), middleware={"tech": [Count()]})
    graph = workflow.compile(checkpointer=InMemorySaver())
    out = graph.invoke({"messages": [{"role": "user", "content": "the app crashes on start"}]},
                       {"configurable": {"thread_id": "mw"}})
    assert out["messages"][-1].content == "Try clearing the cache."
    assert seen == [1]  # one model call, seeing only the query-only handoff


def test_middleware_with_only_a_sync_wrap_hook_is_refused_at_build(tmp_path) -> None:
    """accord runs agents asynchronously on every entry point: a sync-only wrap hook would
    fail at run time and hand every request to the fallback, so the build refuses it."""
    from langchain.agents.middleware import AgentMiddleware

    from accord.graphs import WorkflowBuildError
    from accord.graphs.support import build_support

    class SyncOnly(AgentMiddleware):
        def wrap_model_call(self, request, handler):
            return handler(request)

    with pytest.raises(WorkflowBuildError, match="defines wrap_model_call but not awrap_model_call"):
        build_support(db=str(tmp_path / "s.db"), use_llm=True, middleware={"tech": [SyncOnly()]})
