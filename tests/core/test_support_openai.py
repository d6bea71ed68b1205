"""The real OpenAI code path: langchain init_chat_model -> ChatOpenAI -> HTTP to a local
OpenAI-compatible server (OPENAI_BASE_URL), with no injected model."""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from accord.graphs.support import build_support
from accord.testing import OpenAICompatServer, StructuredReply, ToolCallReply


def test_support_routes_and_answers_over_http(support_db, config, monkeypatch):
    script = [
        StructuredReply({"target": "tech", "confidence": 0.95, "reason": "the app fails"}),
        ToolCallReply("search_kb", {"query": "app crashes on start"}),
        "Clear the cache and restart the app.",
    ]
    with OpenAICompatServer(script) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        graph = build_support(db=support_db, use_llm=True, models=None).compile(checkpointer=InMemorySaver())
        out = graph.invoke({"messages": [{"role": "user", "content": "the desktop app will not start"}]},
                           config())
        requests = server.requests

    route = next(e for e in out["audit"] if e["kind"] == "route")
    assert (route["tier"], route["target"], route["confidence"]) == ("llm", "tech", 0.95)
    assert out["messages"][-1].content == "Clear the cache and restart the app."
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]
    assert [e["tool"] for e in out["audit"] if e["kind"] == "tool_call"] == ["search_kb"]

    assert len(requests) == 3
    assert {r["model"] for r in requests} == {"gpt-4o-mini"}  # the "small" tier
    schema = requests[0]["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]["target"]["enum"]) == {"billing", "tech", "account", "human_triage"}
    assert requests[0]["messages"][-1]["content"] == "the desktop app will not start"
    assert {t["function"]["name"] for t in requests[1]["tools"]} == {"search_kb", "create_ticket"}
    assert requests[2]["messages"][-1]["role"] == "tool"  # the KB result went back to the model


def test_an_approval_over_http(support_db, config, monkeypatch):
    script = [
        ToolCallReply("issue_refund", {"invoice_id": "INV-1002", "amount": 480, "reason": "double charge"}),
        "Your refund of $480 is done.",
    ]
    with OpenAICompatServer(script) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        graph = build_support(db=support_db, use_llm=True).compile(checkpointer=InMemorySaver())
        cfg = config()
        graph.invoke({"messages": [{"role": "user", "content": "refund INV-1002"}]}, cfg)
        assert graph.get_state(cfg).interrupts[0].value["action_requests"][0]["args"]["amount"] == 480
        assert support_db.refunds() == []
        assert len(server.requests) == 1  # the loop stopped at the held call
        out = graph.invoke(Command(resume={"decision": "approve", "by": "alice"}), cfg)
        assert len(server.requests) == 2  # ... and continued with the refund as its answer
        answer = server.requests[1]["messages"][-1]
        assert answer["role"] == "tool" and '"amount": 480.0' in answer["content"]
    assert [r["amount"] for r in support_db.refunds()] == [480.0]
    assert out["messages"][-1].content == "Your refund of $480 is done."
    assert graph.get_state(cfg).next == ()
