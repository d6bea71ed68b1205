"""Retention: keep_latest, older_than, status filters and a SQLite file that shrinks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.checkpoints import (
    CheckpointError,
    expire_threads,
    open_saver,
    open_thread_index,
    prune,
    prune_saver,
)


def _cfg(thread_id: str) -> dict:
    return {"configurable": {"thread_id": thread_id}}


def _checkpoints(saver, thread_id: str) -> list:
    return list(saver.list(_cfg(thread_id)))


def test_keep_latest_leaves_one_checkpoint_and_the_graph_continues(
    db_url, counter_builder, thread_id
):
    threads = [f"{thread_id}-a", f"{thread_id}-b"]
    with open_saver(db_url) as saver, open_thread_index(db_url) as index:
        graph = counter_builder().compile(checkpointer=saver)
        for t in threads:
            for start in (0, 10, 20):
                graph.invoke({"count": start}, _cfg(t))
            index.upsert(t, status="done")
            assert len(_checkpoints(saver, t)) == 9  # input, loop, done per run
        report = prune_saver(saver, index, keep_latest=True)
        assert set(report.threads_pruned) == set(threads)
        assert report.threads_deleted == ()
        assert report.checkpoints_deleted == 16
        assert report.after.checkpoints == report.before.checkpoints - 16
        for t in threads:
            (only,) = _checkpoints(saver, t)
            assert only.checkpoint["channel_values"]["count"] == 21
            assert only.parent_config is None
            assert graph.invoke(None, _cfg(t)) == {"count": 21}  # resumes from the kept one
            assert graph.invoke({"count": 5}, _cfg(t)) == {"count": 6}
            assert index.get(t) is not None  # kept threads stay indexed


def test_keep_latest_keeps_pending_interrupt(db_url, thread_id):
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    class S(TypedDict):
        count: int
        answer: str

    builder = StateGraph(S)
    builder.add_node("inc", lambda s: {"count": s["count"] + 1})
    builder.add_node("ask", lambda s: {"answer": interrupt({"question": "ok?"})})
    builder.add_edge(START, "inc")
    builder.add_edge("inc", "ask")
    builder.add_edge("ask", END)
    with open_saver(db_url) as saver:
        graph = builder.compile(checkpointer=saver)
        graph.invoke({"count": 0}, _cfg(thread_id))
        assert graph.get_state(_cfg(thread_id)).next == ("ask",)
        saver.prune([thread_id], strategy="keep_latest")
        assert len(_checkpoints(saver, thread_id)) == 1
        state = graph.get_state(_cfg(thread_id))
        assert state.next == ("ask",) and state.interrupts[0].value == {"question": "ok?"}
        assert graph.invoke(Command(resume="yes"), _cfg(thread_id)) == {
            "count": 1,
            "answer": "yes",
        }


def test_older_than_and_status_filters(db_url, counter_builder, thread_id):
    now = datetime.now(UTC)
    clock_value = [now - timedelta(days=10)]
    names = {k: f"{thread_id}-{k}" for k in ("old_done", "old_running", "new_done", "unindexed")}
    with (
        open_saver(db_url) as saver,
        open_thread_index(db_url, clock=lambda: clock_value[0]) as index,
    ):
        graph = counter_builder().compile(checkpointer=saver)
        for t in names.values():
            graph.invoke({"count": 0}, _cfg(t))
        index.upsert(names["old_done"], status="done")
        index.upsert(names["old_running"], status="running")
        clock_value[0] = now
        index.upsert(names["new_done"], status="done")

        report = prune_saver(saver, index, older_than=timedelta(days=1), status="done", now=now)
        assert report.threads_deleted == (names["old_done"],)
        assert _checkpoints(saver, names["old_done"]) == []
        assert index.get(names["old_done"]) is None
        for k in ("old_running", "new_done", "unindexed"):
            assert _checkpoints(saver, names[k]), k

        # Without a status: indexed threads by updated_at, others by their newest checkpoint.
        report = prune_saver(saver, index, older_than=timedelta(days=1), now=now)
        assert report.threads_deleted == (names["old_running"],)
        later = now + timedelta(days=2)
        report = prune_saver(saver, index, older_than=timedelta(days=1), now=later)
        assert set(report.threads_deleted) >= {names["new_done"], names["unindexed"]}
        assert all(not _checkpoints(saver, t) for t in names.values())


def test_prune_needs_a_rule(db_url):
    with open_saver(db_url) as saver, pytest.raises(CheckpointError, match="keep_latest"):
        prune_saver(saver, None)


def _db_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_sqlite_file_shrinks_after_pruning_finished_threads(tmp_path, counter_builder, thread_id):
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class Big(TypedDict):
        blob: str

    builder = StateGraph(Big)
    builder.add_node("grow", lambda s: {"blob": s["blob"] + "y" * 20_000})
    builder.add_edge(START, "grow")
    builder.add_edge("grow", END)
    path = tmp_path / "accord.db"
    url = f"sqlite:///{path}"
    with open_saver(url) as saver, open_thread_index(url) as index:
        graph = builder.compile(checkpointer=saver)
        for i in range(20):
            t = f"{thread_id}-{i}"
            graph.invoke({"blob": "x" * 20_000}, _cfg(t))
            index.upsert(t, graph="big", status="done" if i < 18 else "running")
    before = _db_bytes(path)
    report = prune(url, older_than=timedelta(0), status="done")
    assert len(report.threads_deleted) == 18
    assert report.after.bytes < report.before.bytes
    assert _db_bytes(path) < before / 3
    with open_thread_index(url) as index:
        assert {r.status for r in index.list()} == {"running"}


def test_prune_and_expire_by_url(durable_url, counter_builder, thread_id):
    with open_saver(durable_url) as saver:
        graph = counter_builder().compile(checkpointer=saver)
        for start in (0, 1, 2):
            graph.invoke({"count": start}, _cfg(thread_id))
    report = prune(durable_url, keep_latest=True)
    assert report.threads_pruned == (thread_id,) and report.checkpoints_deleted == 8
    assert report.before.bytes is not None and report.after.rows < report.before.rows
    report = expire_threads(durable_url, timedelta(hours=1))
    assert report.threads_deleted == ()
    report = expire_threads(
        durable_url, timedelta(hours=1), now=datetime.now(UTC) + timedelta(hours=2)
    )
    assert report.threads_deleted == (thread_id,)
    with open_saver(durable_url) as saver:
        assert _checkpoints(saver, thread_id) == []
