"""The real OpenAI code path on every entry point: LLM agents answer, on accord's saver.

No model is injected: ``build_support(use_llm=True)`` resolves ``ChatOpenAI``, which talks HTTP
to a local OpenAI-compatible server named by ``OPENAI_BASE_URL``. The same request runs
through ``graph.invoke``, ``graph.ainvoke`` and the ``accord`` CLI in a subprocess; on each the
router's LLM tier classifies, the LLM agent answers, and nothing falls back. When the LLM agent
breaks, its fallback answers and the cause is recorded and shown, never silent.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from accord.checkpoints import open_saver
from accord.graphs.support import SupportDB, build_support
from accord.records import AuditKind, ThreadStatus
from accord.testing import OpenAICompatServer, StructuredReply, ToolCallReply

# Matches no routing rule, so the router's LLM tier classifies it.
REQUEST = "the desktop app will not start"
ROUTE = StructuredReply({"target": "tech", "confidence": 0.95, "reason": "the app fails"})
REPLY = "Clear the cache, then restart the app."
FALLBACK_REPLY = "App crashes on start (KB-2)"
"""How the rule-based fallback (tech_rules) starts its answer to REQUEST."""

ENTRY_POINTS = ("invoke", "ainvoke", "cli")


def answering_script() -> list[Any]:
    """Router classification, then the tech agent: one tool call, then its answer."""
    return [ROUTE, ToolCallReply("search_kb", {"query": "app will not start"}), REPLY]


def run_cli(tmp_path: Path, server: OpenAICompatServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The `accord` CLI in a real subprocess, configured for the LLM agents through its env."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
        "OPENAI_API_KEY": "test",
        "OPENAI_BASE_URL": server.base_url,
        "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"),
        "ACCORD_DB_URL": db_url(tmp_path),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [sys.executable, "-P", "-m", "accord.cli.main", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/accord.db"


def run_support(entry: str, tmp_path: Path, server: OpenAICompatServer,
                monkeypatch: pytest.MonkeyPatch) -> tuple[str, str | None]:
    """Run REQUEST on a new thread through one entry point; (thread id, the reply it returned)."""
    thread = f"t-{uuid.uuid4().hex[:12]}"
    if entry == "cli":
        done = run_cli(tmp_path, server, "run", "support", REQUEST, "--thread", thread, "--json")
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout)
        assert (outcome["thread_id"], outcome["status"]) == (thread, "done")
        assert outcome["fallbacks"] == []
        return thread, outcome["reply"]
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    config = {"configurable": {"thread_id": thread}}
    payload = {"messages": [{"role": "user", "content": REQUEST}]}
    with open_saver(db_url(tmp_path)) as saver:
        graph = build_support(db=SupportDB(tmp_path / "support.db"), use_llm=True).compile(
            checkpointer=saver)
        out = graph.invoke(payload, config) if entry == "invoke" else asyncio.run(
            graph.ainvoke(payload, config))
    return thread, out["messages"][-1].content


def saved(tmp_path: Path, thread: str) -> tuple[Any, list[Any], dict[str, Any]]:
    """What accord's database holds for a thread: its index record, audit log and state."""
    with open_saver(db_url(tmp_path)) as saver:
        record = saver.threads.get(thread)
        audit = saver.audit_log(thread)
        graph = build_support(db=SupportDB(tmp_path / "support.db"), use_llm=True).compile(
            checkpointer=saver)
        values = graph.get_state({"configurable": {"thread_id": thread}}).values
    return record, audit, values


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_llm_agent_answers_on_every_entry_point(entry, tmp_path, monkeypatch):
    with OpenAICompatServer(answering_script()) as server:
        thread, reply = run_support(entry, tmp_path, server, monkeypatch)
        requests = server.requests

    # the router's classification, then the agent's two calls (tool call, answer)
    assert len(requests) == 3, [r.get("messages") for r in requests]
    assert "response_format" in requests[0] and requests[0]["messages"][-1]["content"] == REQUEST
    assert {t["function"]["name"] for t in requests[1]["tools"]} == {"search_kb", "create_ticket"}
    assert requests[2]["messages"][-1]["role"] == "tool"
    assert reply == REPLY

    record, audit, values = saved(tmp_path, thread)
    assert [e.details() for e in audit if e.kind is AuditKind.FALLBACK] == []
    assert [e.details() for e in audit if e.kind is AuditKind.AGENT_FAILED] == []
    assert record is not None and record.status is ThreadStatus.DONE and record.graph == "support"
    output = values["outputs"]["tech"]
    assert (output["agent"], output["kind"], output["status"]) == ("tech", "llm", "completed")
    assert output["reply"] == REPLY
    assert values["messages"][-1].content == REPLY
    route = next(e.details() for e in audit if e.kind is AuditKind.ROUTE)
    assert (route["tier"], route["target"], route["attempts"]) == ("llm", "tech", 1)
    calls = [e.details() for e in audit if e.kind is AuditKind.TOOL_CALL]
    assert [(c["agent"], c["tool"]) for c in calls] == [("tech", "search_kb")]


@pytest.mark.parametrize("entry", ("invoke", "ainvoke"))
def test_a_broken_llm_agent_falls_back_and_says_why(entry, tmp_path, monkeypatch):
    """The agent's call is answered HTTP 400 (script exhausted): not retried, the rule-based
    fallback answers, and a ``fallback`` event names the agent, the fallback and the error."""
    with OpenAICompatServer([ROUTE]) as server:
        thread, reply = run_support(entry, tmp_path, server, monkeypatch)
        requests = server.requests
        errors = server.errors

    assert len(requests) == 2  # the classification, then the agent's one (refused) call
    assert len(errors) == 1 and "script exhausted at call 2" in errors[0]
    assert reply.startswith(FALLBACK_REPLY)

    record, audit, values = saved(tmp_path, thread)
    [fallback] = [e.details() for e in audit if e.kind is AuditKind.FALLBACK]
    assert (fallback["node"], fallback["agent"], fallback["fallback"]) == ("tech", "tech", "tech_rules")
    assert "400" in fallback["error"] and "script exhausted at call 2" in fallback["error"]
    assert fallback["task_id"] == values["active_task"]
    assert (values["outputs"]["tech"]["agent"], values["outputs"]["tech"]["kind"]) == (
        "tech_rules", "rules")
    assert record is not None and record.status is ThreadStatus.DONE


def test_the_cli_shows_a_fallback_in_text_and_json(tmp_path):
    with OpenAICompatServer([ROUTE]) as server:
        text = run_cli(tmp_path, server, "run", "support", REQUEST, "--no-input")
    assert text.returncode == 0, text.stderr
    assert "LLM agents" in text.stdout  # the mode line: the LLM agents were configured
    lines = [ln for ln in text.stdout.splitlines() if ln.startswith("fallback ")]
    # shown live as it happens, then in the run's summary with the whole cause
    assert [ln.split(" failed")[0] for ln in lines] == [
        "fallback tech (openai:gpt-4o-mini)"] * 2, text.stdout
    assert lines[0].endswith("tech_rules takes over")
    assert lines[1].endswith("tech_rules took over")
    assert "(error: " in lines[1]  # the hop's cause: a 400 is not transient
    assert "400" in lines[1] and "script exhausted at call 2" in lines[1]

    with OpenAICompatServer([ROUTE]) as server:
        done = run_cli(tmp_path, server, "run", "support", REQUEST, "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "done" and outcome["reply"].startswith(FALLBACK_REPLY)
    [fallback] = outcome["fallbacks"]
    assert (fallback["agent"], fallback["fallback"]) == ("tech", "tech_rules")
    assert "script exhausted" in fallback["error"]
    _, audit, _ = saved(tmp_path, outcome["thread_id"])
    assert [e.details()["error"] for e in audit if e.kind is AuditKind.FALLBACK] == [fallback["error"]]


def test_a_sync_run_after_an_async_run_on_a_closed_loop(tmp_path, monkeypatch):
    """``asyncio.run(graph.ainvoke(...))`` then ``graph.invoke(...)`` in one process: both runs
    reach the LLM tiers: each event loop gets HTTP connections of its own."""
    def respond(messages, *, tools, schema):
        return ROUTE if schema is not None else REPLY

    with OpenAICompatServer(responder=respond) as server:
        first, _ = run_support("ainvoke", tmp_path, server, monkeypatch)
        second, reply = run_support("invoke", tmp_path, server, monkeypatch)
    for thread in (first, second):
        _, audit, _ = saved(tmp_path, thread)
        route = next(e.details() for e in audit if e.kind is AuditKind.ROUTE)
        assert (route["tier"], route["target"]) == ("llm", "tech"), route["reason"]
    assert reply == REPLY
