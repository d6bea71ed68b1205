"""Feature flags: a switched-off agent is not called and its fallback answers, recorded with the
cause; the flag is read at run time from the database and every change is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.agents.flags import disabled_because
from accord.agents.releases import AgentRelease, ReleaseError, releases_for
from accord.agents.rollout import set_enabled
from accord.checkpoints import open_saver
from accord.graphs.catalog import load_workflow

FLOW = Path(__file__).with_name("flow.py")


def reply(graph, thread: str, text: str = "hello") -> str:
    out = graph.invoke({"messages": [{"role": "user", "content": text}]},
                       {"configurable": {"thread_id": thread}})
    return out["messages"][-1].content


def test_the_decision_is_one_small_function():
    assert disabled_because(None) is None
    assert disabled_because(AgentRelease(agent="a")) is None
    assert disabled_because(AgentRelease(agent="a", enabled=False)) == "disabled by its flag"
    assert disabled_because(AgentRelease(agent="a", retired=True)) == "retired"


def test_a_disabled_agent_goes_to_its_fallback_without_a_redeploy(db_url):
    workflow = load_workflow(f"{FLOW}:build_v1")
    with open_saver(db_url) as saver:
        graph = workflow.compile(checkpointer=saver)  # compiled once, never again
        assert reply(graph, "f-1") == "helper 1.0.0 answered"
        set_enabled(releases_for(saver), workflow.registry, "helper", False, by="ana")
        assert reply(graph, "f-2") == "backup answered"
        events = saver.audit_log("f-2")
        fallback = next(e.details() for e in events if e.kind == "fallback")
        assert fallback["agent"] == "helper" and fallback["fallback"] == "backup"
        assert fallback["error"] == "AgentDisabled: agent helper is disabled by its flag"
        run = next(e.details() for e in events if e.kind == "agent_run")
        assert run["outcome"] == "disabled"
        set_enabled(releases_for(saver), workflow.registry, "helper", True, by="bo")
        assert reply(graph, "f-3") == "helper 1.0.0 answered"
        log = [(c.field, c.old, c.new, c.by) for c in releases_for(saver).changes("helper")]
    assert log == [("enabled", True, False, "ana"), ("enabled", False, True, "bo")]


def test_a_disabled_fallback_leaves_the_error_path(tmp_path):
    workflow = load_workflow(f"{FLOW}:build_v1")
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = workflow.compile(checkpointer=saver)
        store = releases_for(saver)
        set_enabled(store, workflow.registry, "helper", False, by="ana")
        set_enabled(store, workflow.registry, "backup", False, by="ana")
        out = graph.invoke({"messages": [{"role": "user", "content": "hello"}]},
                           {"configurable": {"thread_id": "f-x"}})
        failed = next(e.details() for e in saver.audit_log("f-x") if e.kind == "agent_failed")
    assert failed["error"] == "AgentDisabled: agent helper is disabled by its flag"
    assert out["tasks"][out["active_task"]]["result"] == "triaged"


def test_a_flag_is_seen_by_another_process(tmp_path):
    """Two savers on one SQLite file stand for two processes: the change needs no restart."""
    url = f"sqlite:///{tmp_path}/a.db"
    workflow = load_workflow(f"{FLOW}:build_v1")
    with open_saver(url) as serving, open_saver(url) as admin:
        graph = workflow.compile(checkpointer=serving)
        assert reply(graph, "p-1") == "helper 1.0.0 answered"
        set_enabled(releases_for(admin), workflow.registry, "helper", False, by="ana")
        assert reply(graph, "p-2") == "backup answered"


def test_a_flag_for_an_unknown_agent_changes_nothing(tmp_path):
    workflow = load_workflow(f"{FLOW}:build_v1")
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        with pytest.raises(ReleaseError, match="unknown agent 'nobody'"):
            set_enabled(releases_for(saver), workflow.registry, "nobody", False, by="ana")
        assert releases_for(saver).all() == {}
        assert releases_for(saver).changes() == []
