"""`accord history | replay | fork | prune` in real subprocesses on SQLite."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

REFUND = "Please refund invoice INV-1002, I was charged twice"


def run_json(accord, *args: str):
    done = accord(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def history(accord, db: str, thread: str) -> list[dict]:
    return run_json(accord, "history", thread, "--db", db)


def at_next(entries: list[dict], node: str) -> str:
    return next(e["checkpoint_id"] for e in entries if e["next"] == [node])


def test_history_lists_checkpoints_newest_first(accord, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/tt.db"
    run_json(accord, "run", "support", REFUND, "--thread", "h1", "--db", db, "--no-input")
    entries = history(accord, db, "h1")
    steps = [e["step"] for e in entries]
    assert steps == sorted(steps, reverse=True) and steps[-1] == -1
    assert entries[0]["next"] == ["refund_approval"] and entries[0]["node"] == "billing"
    assert any(e["node"] == "router" and e["next"] == ["billing"] for e in entries)


def test_replay_re_runs_steps_without_repeating_side_effects(accord, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/tt.db"
    first = run_json(accord, "run", "support", "I want to speak to a manager", "--thread", "r1", "--db", db)
    assert first["status"] == "done"
    before = history(accord, db, "r1")
    replayed = run_json(accord, "replay", "r1", "--from", at_next(before, "human_triage"), "--db", db)
    assert replayed["status"] == "done" and replayed["reply"] == first["reply"]
    assert len(history(accord, db, "r1")) > len(before)  # a new branch was written
    tickets = sqlite3.connect(tmp_path / "support.db").execute("SELECT COUNT(*) FROM tickets").fetchone()
    assert tickets == (1,)  # the escalation ticket was not opened twice


def test_fork_edits_a_copy_and_leaves_the_original_untouched(accord, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/tt.db"
    run_json(accord, "run", "support", REFUND, "--thread", "o1", "--db", db, "--no-input")
    original = history(accord, db, "o1")
    point = at_next(original, "refund_approval")
    forked = run_json(accord, "fork", "o1", "--at", point, "--thread", "f1", "--db", db,
                      "--set", 'context.customer_email="carla@example.com"')
    assert forked["thread_id"] == "f1" and forked["next"] == ["refund_approval"]
    shown = run_json(accord, "show", "f1", "--db", db)
    assert shown["context"]["customer_email"]["value"] == "carla@example.com"
    assert shown["context"]["customer_email"]["writer"] == "cli"
    assert history(accord, db, "o1") == original  # untouched
    assert run_json(accord, "show", "o1", "--db", db)["context"]["customer_email"]["value"] == "alice@example.com"
    # The fork continues to its own approval; the original still waits for its own.
    resumed = run_json(accord, "resume", "f1", "--db", db, "--no-input")
    assert resumed["status"] == "interrupted"
    assert resumed["interrupt"]["action_requests"][0]["name"] == "issue_refund"
    assert run_json(accord, "show", "o1", "--db", db)["status"] == "interrupted"


def test_unknown_checkpoint_or_thread_is_one_clear_error(accord, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/tt.db"
    run_json(accord, "run", "support", REFUND, "--thread", "u1", "--db", db, "--no-input")
    for args, expected in [
        (("replay", "u1", "--from", "nope"), "has no checkpoint 'nope'"),
        (("fork", "u1", "--at", "nope"), "has no checkpoint 'nope'"),
        (("history", "ghost"), "unknown thread 'ghost'"),
        (("fork", "u1", "--at", "x", "--set", "novalue"), "--set expects key=value"),
        (("prune",), "say what to prune"),
        (("prune", "--older-than", "3x"), "cannot read duration"),
    ]:
        done = accord(*args, "--db", db)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.strip().startswith("error:") and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_prune_shrinks_a_database_of_finished_threads(accord, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/tt.db"
    for i in range(6):
        run_json(accord, "run", "support", "my app crashes on start", "--thread", f"d{i}", "--db", db)
    run_json(accord, "run", "support", REFUND, "--thread", "waiting", "--db", db, "--no-input")
    report = run_json(accord, "prune", "--keep-latest", "--db", db)
    assert report["checkpoints_deleted"] > 0 and report["threads_pruned"] >= 6
    assert report["bytes_after"] < report["bytes_before"]
    for i in range(6):
        assert len(history(accord, db, f"d{i}")) == 1
    gone = run_json(accord, "prune", "--older-than", "0s", "--status", "done", "--db", db)
    assert gone["threads_deleted"] == 6
    listed = run_json(accord, "threads", "--db", db)
    assert [t["thread_id"] for t in listed] == ["waiting"]
    finished = run_json(accord, "resume", "waiting", "--approve", "--by", "ana", "--db", db)
    assert finished["status"] == "done" and "approved by ana" in finished["reply"]
