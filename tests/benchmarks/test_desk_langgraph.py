"""The hand-written LangGraph desk (benchmarks/desk_langgraph.py) does what the accord desk does:
the send-back loop, an interrupt for a large audience, one publish, a checked resume value, an
undeclared handoff refused; its LLM agents answer through the scripted model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from accord.graphs.desk import DeskDB
from accord.testing import ScriptedChatModel, ToolCallReply

ROOT = Path(__file__).resolve().parents[2]
STORY = ("Write a story about the solar farm for 25,000 readers. "
         "Mention that it powers every home in the city.")


def load(name: str):
    """A module of benchmarks/ by file location (the repository root is never on sys.path)."""
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", ROOT / "benchmarks" / "__init__.py",
            submodule_search_locations=[str(ROOT / "benchmarks")])
        module = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"benchmarks.{name}")


@pytest.fixture
def saver(tmp_path):
    with SqliteSaver.from_conn_string(str(tmp_path / "lg.db")) as saver:
        yield saver


def start(graph, thread: str, text: str = STORY) -> dict:
    cfg = {"configurable": {"thread_id": thread}}
    return graph.invoke({"messages": [{"role": "user", "content": text, "id": "story-1"}]}, cfg), cfg


def test_rules_loop_wait_and_publish_once(tmp_path, saver):
    desk = load("desk_langgraph")
    db = DeskDB(tmp_path / "desk.db")
    graph = desk.build_desk_langgraph(db, checkpointer=saver)
    out, cfg = start(graph, "lg-1")
    assert [m.name for m in out["messages"][1:]] == [
        "drafter", "fact_checker", "drafter", "fact_checker", "editor", "publisher"]
    assert out["__interrupt__"][0].value["args"] == {"story": "story-1", "audience": 25000}
    again = graph.invoke(Command(resume={"decision": "reject"}), cfg)  # no reason: asked again
    assert again["__interrupt__"][0].value["error"]
    assert db.articles() == []
    graph.invoke(Command(resume={"decision": "approve", "by": "ed"}), cfg)
    [article] = db.articles()
    assert (article["draft_id"], article["audience"]) == (2, 25000)
    assert graph.get_state(cfg).next == ()


def test_an_undeclared_handoff_goes_to_the_desk_chief(tmp_path, saver, monkeypatch):
    desk = load("desk_langgraph")
    monkeypatch.setitem(desk.RULES, "fact_checker", lambda q, s, call: ("print it", "publisher", None))
    graph = desk.build_desk_langgraph(DeskDB(tmp_path / "desk.db"), checkpointer=saver)
    out, _ = start(graph, "lg-2")
    assert out["errors"] == ["illegal transition fact_checker -> publisher"]
    assert out["messages"][-1].name == "desk_chief"


def test_llm_agents_answer_without_fallback(tmp_path, saver):
    desk = load("desk_langgraph")
    facts = ("The Riverside solar farm opened in March 2026. It produces 40 MW at peak. "
             "It covers 90 hectares of former farmland.")
    draft = {"story": "story-1", "title": "Solar farm", "audience": 25000}
    model = ScriptedChatModel([
        ToolCallReply("read_draft", {"story": "story-1"}),
        ToolCallReply("find_sources", {"topic": "solar farm"}),
        ToolCallReply("save_draft", {**draft, "body": facts + " It powers every home in the city."}),
        ToolCallReply("transfer_to_fact_checker", {}),
        ToolCallReply("read_draft", {"story": "story-1"}),
        ToolCallReply("check_facts", {"draft_id": 1}),
        ToolCallReply("transfer_to_drafter", {}),
        ToolCallReply("read_draft", {"story": "story-1"}),
        ToolCallReply("save_draft", {**draft, "body": facts}),
        ToolCallReply("transfer_to_fact_checker", {}),
        ToolCallReply("read_draft", {"story": "story-1"}),
        ToolCallReply("check_facts", {"draft_id": 2}),
        ToolCallReply("transfer_to_editor", {}),
        ToolCallReply("transfer_to_publisher", {}),
        ToolCallReply("publish_article", {"story": "story-1", "audience": 25000}),
        "The story awaits an editor's approval.",
    ])
    db = DeskDB(tmp_path / "desk.db")
    graph = desk.build_desk_langgraph(db, model, checkpointer=saver)
    out, cfg = start(graph, "lg-3")
    assert out.get("fallbacks") in (None, []) and model.calls == 16
    graph.invoke(Command(resume={"decision": "approve"}), cfg)
    assert [(a["draft_id"], a["body"]) for a in db.articles()] == [(2, facts)]
