"""The publishing desk example end to end: rules from Python on accord's SQLite saver (the
fact-checker's send-back loop, the audience approval, exactly one publish), the CLI in real
subprocesses (run, approve, reject), the LLM agents through the scripted model and through
ChatOpenAI against the local OpenAI-compatible server, and a fact-checker that tries to hand
a story to the publisher."""

from __future__ import annotations

import json
import uuid

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from accord.agents import AgentResult, ModelResolver
from accord.checkpoints import open_saver
from accord.graphs.desk import DeskDB, build_desk
from accord.testing import OpenAICompatServer, ScriptedChatModel, ToolCallReply

STORY = ("Write a story about the solar farm for 25,000 readers. "
         "Mention that it powers every home in the city.")
SMALL = "Write a story about the library for 800 readers."
FACTS = ("The Riverside solar farm opened in March 2026. It produces 40 MW at peak. "
         "It covers 90 hectares of former farmland.")


@pytest.fixture
def desk_db(tmp_path) -> DeskDB:
    return DeskDB(tmp_path / "desk.db")


def request(text: str, story: str = "story-1") -> dict:
    return {"messages": [{"role": "user", "content": text, "id": story}]}


def kinds(out: dict, kind: str) -> list[dict]:
    return [e for e in out["audit"] if e["kind"] == kind]


def test_rules_send_back_then_wait_for_the_editor_then_publish_once(desk_db, tmp_path):
    cfg = {"configurable": {"thread_id": "desk-1"}}
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = build_desk(db=desk_db, use_llm=False).compile(checkpointer=saver)
        out = graph.invoke(request(STORY), cfg)
        speakers = [m.name for m in out["messages"][1:]]
        assert speakers == ["drafter", "fact_checker", "drafter", "fact_checker", "editor", "publisher"]
        assert out["messages"][2].content == "Unsupported: It powers every home in the city."
        [waiting] = graph.get_state(cfg).interrupts
        [action] = waiting.value["action_requests"]
        assert (action["name"], action["args"]) == (
            "publish_article", {"story": "story-1", "audience": 25000})
        assert desk_db.articles() == []
        assert [t.thread_id for t in saver.threads.list(status="interrupted")] == ["desk-1"]

        out = graph.invoke(Command(resume={"decision": "approve", "by": "ed"}), cfg)
        [article] = desk_db.articles()
        assert (article["story"], article["audience"], article["body"]) == ("story-1", 25000, FACTS)
        assert out["tasks"]["story-1"]["status"] == "completed"
        assert graph.get_state(cfg).next == ()
        [human] = kinds(out, "human_decision")
        assert (human["by"], human["result"]["article_id"]) == ("ed", article["id"])
        assert kinds(out, "fallback") == [] and kinds(out, "illegal_transition") == []

        # the same thread asked again: the approval is spent, nothing publishes twice
        with pytest.raises(Exception, match="not waiting|waits for no"):
            graph.invoke(Command(resume={"decision": "approve"}), cfg)
        assert len(desk_db.articles()) == 1
        moves = [(e.node, e.target) for e in saver.audit_log("desk-1") if e.kind == "transition"]
        assert ("fact_checker", "drafter") in moves and ("fact_checker", "publisher") not in moves


def test_a_small_audience_publishes_without_approval(desk_db, tmp_path):
    cfg = {"configurable": {"thread_id": "desk-small"}}
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = build_desk(db=desk_db, use_llm=False).compile(checkpointer=saver)
        out = graph.invoke(request(SMALL, "story-2"), cfg)
        assert graph.get_state(cfg).next == ()
    assert [(a["story"], a["audience"]) for a in desk_db.articles()] == [("story-2", 800)]
    assert out["messages"][-1].content.startswith("Published article #1")
    assert kinds(out, "human_decision") == []


def test_a_reject_publishes_nothing(desk_db, config):
    graph = build_desk(db=desk_db, use_llm=False).compile(checkpointer=InMemorySaver())
    cfg = config()
    graph.invoke(request(STORY), cfg)
    out = graph.invoke(Command(resume={"decision": "reject", "reason": "embargoed", "by": "ed"}), cfg)
    assert desk_db.articles() == []
    assert out["tasks"]["story-1"]["status"] == "failed"
    assert "embargoed" in out["tasks"]["story-1"]["result"]
    assert out["messages"][-1].name == "publisher"  # the publisher heard the reject and stopped


def test_the_fact_checker_may_not_hand_a_story_to_the_publisher(desk_db, config, monkeypatch):
    import accord.graphs.desk.agents as desk_agents

    def straight_to_print(handoff, tools):
        return AgentResult("Looks fine, print it.", status="handoff", handoff_to="publisher")

    monkeypatch.setattr(desk_agents, "fact_checker_rules", straight_to_print)
    graph = build_desk(db=desk_db, use_llm=False).compile(checkpointer=InMemorySaver())
    out = graph.invoke(request(SMALL), config())
    [refused] = kinds(out, "illegal_transition")
    assert (refused["node"], refused["target"]) == ("fact_checker", "publisher")
    assert [m.name for m in out["messages"][1:]] == ["drafter", "fact_checker"]
    assert out["tasks"]["story-1"]["status"] == "failed"
    assert out["tasks"]["story-1"]["result"].startswith("Held for the desk chief")
    assert desk_db.articles() == []


def test_the_drawing_has_no_fact_checker_to_publisher_edge(desk_db):
    table = build_desk(db=desk_db, use_llm=False).table
    assert table.allows("fact_checker", "drafter") and table.allows("fact_checker", "editor")
    assert not table.allows("fact_checker", "publisher")
    drawn = build_desk(db=desk_db, use_llm=False).mermaid()
    assert "fact_checker -.-> editor;" in drawn and "fact_checker -.-> publisher;" not in drawn


def as_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("decision", ["--approve", "--reject"])
def test_cli_run_waits_for_the_editor_and_resume_decides(accord, tmp_path, decision):
    thread = f"desk-{uuid.uuid4().hex[:8]}"
    paused = as_json(accord("run", "desk", STORY, "--thread", thread, "--no-input", "--json"))
    assert (paused["status"], paused["next"]) == ("interrupted", ["publish_approval"])
    assert paused["interrupt"]["action_requests"][0]["args"]["audience"] == 25000
    desk = DeskDB(tmp_path / "desk.db")
    assert desk.articles() == []
    args = [decision] if decision == "--approve" else [decision, "embargoed until Monday"]
    done = as_json(accord("resume", thread, *args, "--by", "ed", "--json"))
    assert done["status"] == "done"
    assert len(desk.articles()) == (1 if decision == "--approve" else 0)
    shown = as_json(accord("show", thread, "--json"))
    [human] = [e for e in shown["audit"] if e["kind"] == "human_decision"]
    assert (human["decision"], human["by"]) == (decision.strip("-"), "ed")


def llm_script(story: str = "story-1") -> list:
    """What the four LLM agents say, in order: a send-back, then a clean check, then a held publish."""
    claim = "It powers every home in the city."
    return [
        ToolCallReply("read_draft", {"story": story}),
        ToolCallReply("find_sources", {"topic": "solar farm"}),
        ToolCallReply("save_draft", {"story": story, "title": "Solar farm", "audience": 25000,
                                     "body": FACTS + " " + claim}),
        ToolCallReply("transfer_to_fact_checker", {"reason": "drafted"}),
        ToolCallReply("read_draft", {"story": story}),
        ToolCallReply("check_facts", {"draft_id": 1}),
        ToolCallReply("transfer_to_drafter", {"reason": "unsupported claim"}),
        ToolCallReply("read_draft", {"story": story}),
        ToolCallReply("save_draft", {"story": story, "title": "Solar farm", "audience": 25000,
                                     "body": FACTS}),
        ToolCallReply("transfer_to_fact_checker", {"reason": "claim removed"}),
        ToolCallReply("read_draft", {"story": story}),
        ToolCallReply("check_facts", {"draft_id": 2}),
        ToolCallReply("transfer_to_editor", {"reason": "all sourced"}),
        ToolCallReply("read_draft", {"story": story}),
        ToolCallReply("transfer_to_publisher", {"reason": "ready"}),
        ToolCallReply("read_draft", {"story": story}),
        ToolCallReply("publish_article", {"story": story, "audience": 25000}),
        "The story awaits an editor's approval.",
        "Published.",  # the publisher's answer once its held call returns to it
    ]


def assert_llm_agents_answered(out: dict, desk_db: DeskDB) -> None:
    assert kinds(out, "fallback") == []
    assert {(o["agent"], o["kind"]) for o in out["outputs"].values()} == {
        ("drafter", "llm"), ("fact_checker", "llm"), ("editor", "llm"), ("publisher", "llm")}
    [article] = desk_db.articles()
    assert (article["draft_id"], article["body"], article["audience"]) == (2, FACTS, 25000)


def test_llm_agents_through_the_scripted_model(desk_db, tmp_path):
    model = ScriptedChatModel(llm_script())
    graph = build_desk(db=desk_db, use_llm=True, models=ModelResolver(models={"*": model}))
    cfg = {"configurable": {"thread_id": "desk-llm"}}
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        compiled = graph.compile(checkpointer=saver)
        compiled.invoke(request(STORY), cfg)
        [action] = compiled.get_state(cfg).interrupts[0].value["action_requests"]
        assert action["args"] == {"story": "story-1", "audience": 25000}
        assert desk_db.articles() == []
        out = compiled.invoke(Command(resume={"decision": "approve", "by": "ed"}), cfg)
    assert_llm_agents_answered(out, desk_db)
    # on its second visit the drafter reads the draft afresh: the check's finding is there
    second_read = next(m for m in model.call_log[8] if m.type == "tool")
    assert "It powers every home in the city." in second_read.content


def test_llm_agents_through_chatopenai_over_http(desk_db, config, monkeypatch):
    with OpenAICompatServer(llm_script()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        graph = build_desk(db=desk_db).compile(checkpointer=InMemorySaver())  # LLM: a key is set
        cfg = config()
        graph.invoke(request(STORY), cfg)
        out = graph.invoke(Command(resume={"decision": "approve", "by": "ed"}), cfg)
        requests = server.requests
    assert_llm_agents_answered(out, desk_db)
    assert {r["model"] for r in requests} == {"gpt-4o-mini"}  # the "small" tier
    offered = {r["messages"][0]["content"].split(".")[0]: {t["function"]["name"] for t in r["tools"]}
               for r in requests}
    checker = offered["You fact-check drafts"]
    assert checker == {"read_draft", "check_facts", "transfer_to_drafter", "transfer_to_editor"}
