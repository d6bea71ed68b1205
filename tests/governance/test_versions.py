"""Versioned agents: a breaking change needs a major bump, the registry keeps the changelog, and
a thread checkpointed under one version resumes under the next."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.types import Command
from pydantic import BaseModel

from accord.agents import AgentRegistry, AgentSpec, SpecError, load_specs
from accord.agents.versions import BreakingChange, check_bump, spec_changes
from accord.checkpoints import open_saver
from accord.graphs.catalog import load_workflow

FLOW = Path(__file__).with_name("flow.py")


class AskV1(BaseModel):
    query: str


class AskV2(BaseModel):
    query: str
    customer: str  # a new required input field


class OutV1(BaseModel):
    answer: str
    score: float


class OutV2(BaseModel):
    answer: str


def spec(version: str, **fields) -> AgentSpec:
    return AgentSpec(id="clerk", version=version, purpose="Files things", kind="rules",
                     handler=lambda h, t: None, **fields)


@pytest.mark.parametrize(("old", "new", "named"), [
    ({"tools": ("a", "b")}, {"tools": ("a",)}, "tool 'b' removed"),
    ({"writes": ("invoice",)}, {"writes": ()}, "owned context key 'invoice' removed"),
    ({"input_schema": AskV1}, {"input_schema": AskV2}, "input field 'customer' added"),
    ({"output_schema": OutV1}, {"output_schema": OutV2}, "output field 'score' removed"),
    ({"responsibilities": ("filing",)}, {"responsibilities": ()},
     "responsibility 'filing' removed"),
])
def test_a_breaking_change_without_a_major_bump_is_refused_naming_it(old, new, named):
    with pytest.raises(BreakingChange) as caught:
        AgentRegistry([spec("1.0.0", **old), spec("1.1.0", **new)])
    assert named in str(caught.value)
    assert "clerk 1.1.0" in str(caught.value) and "2.0.0" in str(caught.value)
    registry = AgentRegistry([spec("1.0.0", **old), spec("2.0.0", **new)])  # a major bump may
    assert [s.version for s in registry.versions("clerk")] == ["1.0.0", "2.0.0"]


def test_additions_are_not_breaking():
    old = spec("1.0.0", tools=("a",), output_schema=OutV2)
    new = spec("1.1.0", tools=("a", "b"), writes=("note",), output_schema=OutV1)
    changes = check_bump(old, new)
    assert {c.describe() for c in changes} == {
        "tool 'b' added", "owned context key 'note' added", "output field 'score' added"}
    assert not any(c.breaking for c in changes)


def test_an_older_version_registered_later_is_checked_against_the_newer_one():
    registry = AgentRegistry([spec("1.2.0", tools=("a",))])
    with pytest.raises(BreakingChange, match="tool 'b' removed"):
        registry.register(spec("1.1.0", tools=("a", "b")))
    assert [s.version for s in registry.versions("clerk")] == ["1.2.0"]


def test_the_changelog_lists_each_version_with_its_changes():
    registry = AgentRegistry([spec("1.0.0", tools=("a",)),
                              spec("1.1.0", tools=("a", "b"), notes="can do b"),
                              spec("2.0.0", tools=("b",))])
    log = registry.changelog("clerk")
    assert [(e.version, e.previous) for e in log] == [("1.0.0", None), ("1.1.0", "1.0.0"),
                                                      ("2.0.0", "1.1.0")]
    assert log[1].notes == "can do b"
    assert [c.describe() for c in log[2].changes] == ["tool 'a' removed"]
    assert spec_changes(registry.get("clerk", "1.0.0"), registry.get("clerk", "1.0.0")) == []


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "agents.yaml"
    bad.write_text("- id: clerk\n  version: 1.0.0\n  purpose: [unclosed\n")
    with pytest.raises(SpecError) as caught:
        load_specs(bad)
    assert str(caught.value).startswith(f"{bad}:")
    assert "malformed YAML" in str(caught.value)


def test_a_thread_checkpointed_under_one_version_resumes_under_the_next(durable_url):
    thread = {"configurable": {"thread_id": "t-upgrade"}}
    with open_saver(durable_url) as saver:
        v1 = load_workflow(f"{FLOW}:build_v1").compile(checkpointer=saver)
        v1.invoke({"messages": [{"role": "user", "content": "please pay 50"}]}, thread)
        assert saver.threads.get("t-upgrade").status == "interrupted"
        assert v1.get_state(thread).values["versions"] == {"helper": "1.0.0"}
    with open_saver(durable_url) as saver:  # a new deployment: only helper 1.1.0 exists
        v2 = load_workflow(f"{FLOW}:build_v2").compile(checkpointer=saver)
        out = v2.invoke(Command(resume={"decision": "approve", "by": "ana"}), thread)
        assert saver.threads.get("t-upgrade").status == "done"
        # the decision returns to the agent that proposed it: helper 1.1.0 now
        assert out["messages"][-1].content == "1.1.0: paid 50"
        out = v2.invoke({"messages": [{"role": "user", "content": "hello"}]}, thread)
        assert out["messages"][-1].content == "helper 1.1.0 answered"
        assert out["versions"] == {"helper": "1.1.0"}
        runs = [e.details() for e in saver.audit_log("t-upgrade") if e.kind == "agent_run"]
    assert [(r["version"], r["choice"]) for r in runs] == [
        ("1.0.0", "stable"), ("1.1.0", "repinned"), ("1.1.0", "pinned")]
    assert runs[1]["previous"] == "1.0.0"


def test_a_thread_stays_on_its_version_while_that_version_is_deployed(tmp_path):
    url = f"sqlite:///{tmp_path}/accord.db"
    thread = {"configurable": {"thread_id": "t-sticky"}}
    with open_saver(url) as saver:
        v1 = load_workflow(f"{FLOW}:build_v1").compile(checkpointer=saver)
        v1.invoke({"messages": [{"role": "user", "content": "please pay 50"}]}, thread)
    with open_saver(url) as saver:  # 1.1.0 declared, 1.0.0 still deployed beside it
        both = load_workflow(f"{FLOW}:build", versions=("1.0.0", "1.1.0"),
                             declared="1.1.0").compile(checkpointer=saver)
        both.invoke(Command(resume={"decision": "approve", "by": "ana"}), thread)
        out = both.invoke({"messages": [{"role": "user", "content": "hello"}]}, thread)
        assert out["messages"][-1].content == "helper 1.0.0 answered"
        fresh = both.invoke({"messages": [{"role": "user", "content": "hello"}]},
                            {"configurable": {"thread_id": "t-new"}})
        assert fresh["messages"][-1].content == "helper 1.1.0 answered"
