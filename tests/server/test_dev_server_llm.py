"""`langgraph dev` runs the support graph's LLM agents, not their rule-based fallbacks.

A real server subprocess, configured like a deployment through its environment
(``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` of a local OpenAI-compatible server this test runs), is
driven through langgraph-sdk. The router's LLM tier and the LLM agent answer over HTTP; accord's
database records the run (thread index ``done``, graph ``support``) with no fallback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph_sdk import get_client

from accord.checkpoints import open_saver
from accord.records import AuditKind, ThreadStatus
from accord.testing import OpenAICompatServer, StructuredReply, ToolCallReply

# Matches no routing rule, so the router's LLM tier classifies it.
REQUEST = "the desktop app will not start"
REPLY = "Clear the cache, then restart the app."
SCRIPT = [
    StructuredReply({"target": "tech", "confidence": 0.95, "reason": "the app fails"}),
    ToolCallReply("search_kb", {"query": "app will not start"}),
    REPLY,
]


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


@pytest.mark.timeout(300)
async def test_dev_server_runs_the_llm_agents(serve, tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    db_url = f"sqlite:///{tmp_path}/accord.db"
    with OpenAICompatServer(SCRIPT) as llm:
        env = {"ACCORD_DB_URL": db_url, "ACCORD_SUPPORT_DB": str(workdir / "support.db"),
               "OPENAI_API_KEY": "test", "OPENAI_BASE_URL": llm.base_url}
        with serve(workdir, env) as server:
            async with get_client(url=server.url) as client:
                thread_id = (await client.threads.create())["thread_id"]
                result = await client.runs.wait(
                    thread_id, "support",
                    input={"messages": [{"role": "user", "content": REQUEST}]})
                state = await client.threads.get_state(thread_id)
        requests = llm.requests

    assert isinstance(result, dict), f"{result!r}\n{server.log_tail()}"
    assert text_of(result["messages"][-1]) == REPLY, server.log_tail()
    # the classification, then the tech agent's tool call and its answer
    assert len(requests) == 3, server.log_tail()
    assert "response_format" in requests[0]
    assert {t["function"]["name"] for t in requests[1]["tools"]} == {"search_kb", "create_ticket"}
    assert requests[2]["messages"][-1]["role"] == "tool"
    output = state["values"]["outputs"]["tech"]
    assert (output["agent"], output["kind"], output["reply"]) == ("tech", "llm", REPLY)
    assert state["next"] == []

    with open_saver(db_url) as saver:
        record = saver.threads.get(thread_id)
        audit = saver.audit_log(thread_id)
    assert record is not None and record.graph == "support"
    assert record.status is ThreadStatus.DONE
    assert [e.details() for e in audit if e.kind is AuditKind.FALLBACK] == []
    route = next(e.details() for e in audit if e.kind is AuditKind.ROUTE)
    assert (route["tier"], route["target"]) == ("llm", "tech")
    calls = [e.details() for e in audit if e.kind is AuditKind.TOOL_CALL]
    assert [(c["agent"], c["tool"]) for c in calls] == [("tech", "search_kb")]
