"""Canary releases: a share of new threads gets the new version, each thread keeps the version
it got, a rollback sends no new thread to it, and the audit log compares the versions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from langgraph.types import Command

from accord.agents.canary import bucket
from accord.agents.compare import compare_versions
from accord.agents.releases import ReleaseError, releases_for
from accord.agents.rollout import promote, rollback, start_canary
from accord.checkpoints import open_saver
from accord.graphs.catalog import load_workflow

FLOW = Path(__file__).with_name("flow.py")
N = 200


def ask(graph, thread: str, text: str = "hello") -> str:
    out = graph.invoke({"messages": [{"role": "user", "content": text}]},
                       {"configurable": {"thread_id": thread}})
    return out["versions"]["helper"]


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_the_bucket_is_deterministic_and_uniform():
    assert bucket("t-1", "helper") == bucket("t-1", "helper")
    assert bucket("t-1", "helper") != bucket("t-1", "other")
    below = sum(bucket(f"t-{i}", "helper") < 20 for i in range(10_000))
    assert within_binomial(below, 10_000, 0.2)


def test_a_canary_at_20_percent_gets_about_20_percent_of_new_threads(db_url):
    workflow = load_workflow(f"{FLOW}:build_canary")
    with open_saver(db_url) as saver:
        graph = workflow.compile(checkpointer=saver)
        start_canary(releases_for(saver), workflow.registry, "helper", "1.1.0", 20, by="ana")
        chosen = {f"c-{i}": ask(graph, f"c-{i}") for i in range(N)}
        on_canary = [t for t, v in chosen.items() if v == "1.1.0"]
        assert within_binomial(len(on_canary), N, 0.2), len(on_canary)
        assert set(chosen.values()) == {"1.0.0", "1.1.0"}

        # sticky: a later request on each thread keeps its version, whatever the weight now
        start_canary(releases_for(saver), workflow.registry, "helper", "1.1.0", 90, by="ana")
        assert all(ask(graph, t) == v for t, v in list(chosen.items())[:40])

        stats = {s.version: s for s in compare_versions(saver, "helper")}
        assert stats["1.1.0"].threads == len(on_canary)
        assert stats["1.0.0"].threads + stats["1.1.0"].threads == N
        assert stats["1.0.0"].error_rate == 0.0

        rollback(releases_for(saver), workflow.registry, "helper", by="ana")
        assert {ask(graph, f"r-{i}") for i in range(60)} == {"1.0.0"}
        # threads pinned to the withdrawn version move back to the stable one
        assert ask(graph, on_canary[0]) == "1.0.0"


def test_the_version_holds_across_an_approval_and_a_resume(durable_url):
    workflow = load_workflow(f"{FLOW}:build_canary")
    with open_saver(durable_url) as saver:
        start_canary(releases_for(saver), workflow.registry, "helper", "1.1.0", 50, by="ana")
    thread = next(f"s-{i}" for i in range(100) if bucket(f"s-{i}", "helper") < 50)
    config = {"configurable": {"thread_id": thread}}
    with open_saver(durable_url) as saver:
        graph = workflow.compile(checkpointer=saver)
        graph.invoke({"messages": [{"role": "user", "content": "pay 50"}]}, config)
        assert saver.threads.get(thread).pending["agent"] == "helper"
    with open_saver(durable_url) as saver:  # another process; the canary is now at 0%
        start_canary(releases_for(saver), workflow.registry, "helper", "1.1.0", 0, by="ana")
        graph = load_workflow(f"{FLOW}:build_canary").compile(checkpointer=saver)
        out = graph.invoke(Command(resume={"decision": "approve", "by": "ana"}), config)
        assert out["messages"][-1].content == "1.1.0: paid 50"
        out = graph.invoke({"messages": [{"role": "user", "content": "hello"}]}, config)
        assert out["messages"][-1].content == "helper 1.1.0 answered"
        runs = [e.details() for e in saver.audit_log(thread) if e.kind == "agent_run"]
    assert [(r["version"], r["choice"]) for r in runs] == [
        ("1.1.0", "canary"), ("1.1.0", "pinned"), ("1.1.0", "pinned")]


def test_compare_counts_errors_per_version(tmp_path):
    workflow = load_workflow(f"{FLOW}:build_canary")
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = workflow.compile(checkpointer=saver)
        start_canary(releases_for(saver), workflow.registry, "helper", "1.1.0", 100, by="ana")
        for i in range(3):
            ask(graph, f"e-{i}", "boom")  # the canary fails; its fallback answers
        ask(graph, "e-ok")
        start_canary(releases_for(saver), workflow.registry, "helper", "1.1.0", 0, by="ana")
        ask(graph, "e-stable")
        stats = {s.version: s for s in compare_versions(saver, "helper")}
    assert (stats["1.1.0"].calls, stats["1.1.0"].errors) == (4, 3)
    assert stats["1.1.0"].error_rate == 0.75
    assert (stats["1.0.0"].calls, stats["1.0.0"].errors) == (1, 0)


def test_promote_makes_the_canary_every_new_threads_version(tmp_path):
    workflow = load_workflow(f"{FLOW}:build_canary")
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = workflow.compile(checkpointer=saver)
        store = releases_for(saver)
        start_canary(store, workflow.registry, "helper", "1.1.0", 10, by="ana")
        promote(store, workflow.registry, "helper", "1.1.0", by="bo")
        assert {ask(graph, f"p-{i}") for i in range(30)} == {"1.1.0"}
        rollback(store, workflow.registry, "helper", by="bo")  # undoes the promotion
        assert {ask(graph, f"q-{i}") for i in range(30)} == {"1.0.0"}
        fields = [(c.field, c.old, c.new, c.by) for c in store.changes("helper")]
    assert ("stable", None, "1.1.0", "bo") in fields
    assert ("stable", "1.1.0", None, "bo") in fields


@pytest.mark.parametrize("weight", [150, -1, "lots"])
def test_a_weight_out_of_range_changes_nothing(tmp_path, weight):
    workflow = load_workflow(f"{FLOW}:build_canary")
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        store = releases_for(saver)
        start_canary(store, workflow.registry, "helper", "1.1.0", 20, by="ana")
        with pytest.raises(ReleaseError, match="canary weight of agent helper"):
            start_canary(store, workflow.registry, "helper", "1.1.0", weight, by="ana")
        with pytest.raises(ReleaseError, match="no version 9.9.9"):
            start_canary(store, workflow.registry, "helper", "9.9.9", 20, by="ana")
        assert store.get("helper").weight == 20
        assert len(store.changes()) == 2
