"""Retirement: refused while a transition, a fallback or a waiting thread needs the agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.types import Command

from accord.agents.releases import releases_for
from accord.checkpoints import open_saver
from accord.graphs.catalog import load_workflow
from accord.graphs.retirement import RetirementRefused, retire_agent

FLOW = Path(__file__).with_name("flow.py")


def waiting(saver):
    return saver.threads.list(status="interrupted")


def test_an_agent_a_transition_targets_is_not_retired(tmp_path):
    workflow = load_workflow(f"{FLOW}:build_v1")
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        with pytest.raises(RetirementRefused, match="transition router -> helper targets it"):
            retire_agent(releases_for(saver), workflow, "helper", waiting(saver), by="ana")
        with pytest.raises(RetirementRefused, match="agent helper@1.0.0 falls back to it"):
            retire_agent(releases_for(saver), workflow, "backup", waiting(saver), by="ana")
        assert releases_for(saver).changes() == []


def test_an_agent_a_waiting_thread_needs_is_retired_only_once_the_thread_is_answered(tmp_path):
    url = f"sqlite:///{tmp_path}/a.db"
    old = load_workflow(f"{FLOW}:build_v1")
    with open_saver(url) as saver:
        old.compile(checkpointer=saver).invoke(
            {"messages": [{"role": "user", "content": "pay 50"}]},
            {"configurable": {"thread_id": "w-1"}})
    new = load_workflow(f"{FLOW}:build_clerk")  # routes to "clerk"; helper still registered
    with open_saver(url) as saver:
        with pytest.raises(RetirementRefused, match="thread w-1 waits at an approval it proposed"):
            retire_agent(releases_for(saver), new, "helper", waiting(saver), by="ana")
        load_workflow(f"{FLOW}:build_v1").compile(checkpointer=saver).invoke(
            Command(resume={"decision": "approve", "by": "ana"}),
            {"configurable": {"thread_id": "w-1"}})
        release = retire_agent(releases_for(saver), new, "helper", waiting(saver), by="ana")
        assert release.retired
        assert [(c.field, c.new, c.by) for c in releases_for(saver).changes("helper")] == [
            ("retired", True, "ana")]
