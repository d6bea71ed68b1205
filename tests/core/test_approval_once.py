"""An approved side effect happens exactly once, although LangGraph re-runs the approval node
on resume, on a fork, or after a crash that lost the node's checkpoint."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from langgraph.types import Command

from accord.checkpoints import open_saver
from accord.engine import NotWaiting
from accord.graphs.support import build_support

REFUND = "Please refund invoice INV-1002, I was charged twice"
THREAD = {"configurable": {"thread_id": "refund-once"}}


def snapshot(src, dst) -> None:
    """Copy a SQLite database consistently (what a backup, or a crash before a write, leaves)."""
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def humans(values: dict) -> list[dict]:
    return [e for e in values["audit"] if e["kind"] == "human_decision"]


def test_a_rerun_of_the_approval_after_losing_its_checkpoint_refunds_once(tmp_path, support_db):
    paused_copy = tmp_path / "paused.db"
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, THREAD)
        snapshot(tmp_path / "accord.db", paused_copy)
        graph.invoke(Command(resume={"decision": "approve", "by": "alice"}), THREAD)
        assert graph.get_state(THREAD).next == ()
    [refund] = support_db.refunds()

    # Another process resumes from the checkpoint as it was before the approval completed:
    # the approval node really runs again (a different approver is recorded) ...
    with open_saver(f"sqlite:///{paused_copy}") as saver:
        graph = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        assert graph.get_state(THREAD).next == ("refund_approval",)
        out = graph.invoke(Command(resume={"decision": "approve", "by": "carol"}), THREAD)
    [human] = humans(out)
    assert human["by"] == "carol"
    # ... and the idempotency key makes the tool return the recorded refund instead of a new one.
    assert human["result"]["refund_id"] == refund["id"]
    assert support_db.refunds() == [refund]


def test_an_edited_rerun_does_not_refund_twice_either(tmp_path, support_db):
    paused_copy = tmp_path / "paused.db"
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, THREAD)
        snapshot(tmp_path / "accord.db", paused_copy)
        graph.invoke(Command(resume={"decision": "edit", "args": {"amount": 300}, "by": "alice"}), THREAD)
    with open_saver(f"sqlite:///{paused_copy}") as saver:
        graph = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        graph.invoke(Command(resume={"decision": "edit", "args": {"amount": 300}, "by": "alice"}), THREAD)
    assert [r["amount"] for r in support_db.refunds()] == [300.0]


def test_forking_and_resuming_again_on_the_same_saver_refunds_once(tmp_path, support_db):
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, THREAD)
        paused = graph.get_state(THREAD).config
        graph.invoke(Command(resume={"decision": "approve", "by": "alice"}), THREAD)
        # a decision for a finished thread is refused; a replay from the paused checkpoint
        # approves again without refunding again
        with pytest.raises(NotWaiting, match="is finished; it is not waiting for a decision"):
            graph.invoke(Command(resume={"decision": "approve", "by": "bob"}), THREAD)
        graph.invoke(Command(resume={"decision": "approve", "by": "carol"}), paused)
        # and a fresh graph on the same saver sees one finished thread
        fresh = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        assert fresh.get_state(THREAD).next == ()
    assert [r["amount"] for r in support_db.refunds()] == [480.0]


def test_a_second_thread_asking_for_the_same_refund_is_a_new_action(tmp_path, support_db):
    """Idempotency is per action: another thread's approval is a new refund, which here fails
    cleanly (recorded, not raised) because the invoice was refunded in full meanwhile."""
    threads = [{"configurable": {"thread_id": name}} for name in ("first", "second")]
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        for cfg in threads:
            graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, cfg)
        for cfg in threads:
            out = graph.invoke(Command(resume={"decision": "approve", "by": "alice"}), cfg)
        assert graph.get_state(threads[1]).next == ()
    [human] = humans(out)
    assert "exceeds what is left on INV-1002 (0.00)" in human["error"]
    assert [t["status"] for t in out["tasks"].values()] == ["failed"]
    assert "approved but failed" in out["messages"][-1].content
    assert out["messages"][-1].name == "billing"  # the agent got the failure and said so
    assert [r["amount"] for r in support_db.refunds()] == [480.0]
