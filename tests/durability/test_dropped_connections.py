"""PostgreSQL sessions ended mid-run (a server restart, a proxy, an idle killer, an operator).

- Alone, the run carries on: its pool replaces the dropped connections, its lock session
  reconnects and takes the thread's lock again, and it finishes.
- When a second process takes the thread meanwhile, the first one's writes are refused
  (``WriterFenced``): one writer, a linear history, nothing forked.

The agent waits on a file the test creates (an event), never on a sleep; the test ends only its
own child's sessions, found by their ``application_name``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from accord.checkpoints import open_saver

HERE = Path(__file__).parent


def with_app_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def wait_for(path: Path, child: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until the child's agent has started (it writes `path`), or fail with its output."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            out, err = child.communicate()
            raise AssertionError(f"child ended before its agent started: {child.returncode} {err}")
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.02)


def terminate_sessions(url: str, app_name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()", (app_name,)
        ).fetchall()
    return len(rows)


def accord(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-P", "-m", "accord.cli.main", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def base_env(tmp_path: Path, name: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(HERE), "SLOW_NAME": name,
            "SLOW_STARTED": str(tmp_path / f"{name}.started")}


def test_run_survives_its_connections_being_terminated(tmp_path: Path, postgres_url: str) -> None:
    thread = f"drop-{uuid.uuid4().hex[:10]}"
    app = f"accord-drop-{uuid.uuid4().hex[:8]}"
    env = {**base_env(tmp_path, "A"), "SLOW_RELEASE": str(tmp_path / "A.release")}
    child = accord(["run", "slowgraph:build", "hello", "--thread", thread, "--json",
                    "--db", with_app_name(postgres_url, app)], env)
    wait_for(tmp_path / "A.started", child)  # the agent runs; the pool and the lock session are open
    assert terminate_sessions(postgres_url, app) >= 1
    (tmp_path / "A.release").touch()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    outcome = json.loads(out)
    assert (outcome["status"], outcome["reply"]) == ("done", "finished by A")
    with open_saver(postgres_url) as saver:
        record = saver.threads.get(thread)
        checkpoints = list(saver.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}))
    assert record.status == "done" and record.epoch == 1
    assert len(checkpoints) >= 3  # what was saved before the drop is all still there


def test_a_writer_that_lost_its_thread_cannot_write(tmp_path: Path, postgres_url: str) -> None:
    """Terminate A's lock session mid-run; B takes the thread over and finishes it; A's writes
    are refused with one line (exit 2) and the history stays linear."""
    thread = f"fence-{uuid.uuid4().hex[:10]}"
    app_a = f"accord-a-{uuid.uuid4().hex[:8]}"
    env_a = {**base_env(tmp_path, "A"), "SLOW_RELEASE": str(tmp_path / "A.release")}
    first = accord(["run", "slowgraph:build", "hello", "--thread", thread, "--json",
                    "--db", with_app_name(postgres_url, app_a)], env_a)
    wait_for(tmp_path / "A.started", first)
    assert terminate_sessions(postgres_url, app_a) >= 1  # A's lock is gone with its session

    second = accord(["resume", thread, "--json", "--db", postgres_url], base_env(tmp_path, "B"))
    out_b, err_b = second.communicate(timeout=120)
    assert second.returncode == 0, err_b
    assert (json.loads(out_b)["status"], json.loads(out_b)["reply"]) == ("done", "finished by B")

    (tmp_path / "A.release").touch()  # A's agent returns, and A tries to write its step
    out_a, err_a = first.communicate(timeout=120)
    assert first.returncode == 2, (out_a, err_a)
    assert err_a.startswith("error: ") and err_a.count("\n") == 1, err_a
    assert f"thread {thread!r} was taken over by another writer" in err_a

    with open_saver(postgres_url) as saver:
        record = saver.threads.get(thread)
        checkpoints = list(saver.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}))
        audit = saver.audit_log(thread)
    assert (record.status, record.epoch) == ("done", 2)
    ids = sorted(c.config["configurable"]["checkpoint_id"] for c in checkpoints)
    parents = {c.config["configurable"]["checkpoint_id"]:
               (c.parent_config or {}).get("configurable", {}).get("checkpoint_id")
               for c in checkpoints}
    assert [parents[i] for i in ids] == [None, *ids[:-1]]  # linear: nothing forked
    finished = [e for e in audit if e.kind == "task_finished"]
    assert [e.details()["task"]["result"] for e in finished] == ["finished by B"]


def _hold_checkpoints_then_cancel(url: str, app: str, held: threading.Event,
                                  cancelled: list[int]) -> None:
    """Lock the checkpoints table; cancel the first statement of `app` that waits for it (as
    an operator or a statement killer would); then let go."""
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
        holder.execute("LOCK TABLE checkpoints IN EXCLUSIVE MODE")
        held.set()
        deadline = time.monotonic() + 60
        while not cancelled and time.monotonic() < deadline:
            cancelled.extend(row[0] for row in watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'", (app,)).fetchall())
        for pid in cancelled:
            watcher.execute("SELECT pg_cancel_backend(%s)", (pid,))
        holder.rollback()


def test_a_run_whose_database_fails_under_it_stays_running_and_continues(postgres_url: str):
    """accord's own database failing mid-run is not the run's failure: the steps saved stand,
    the thread stays running (no dead letter, no run_failed), and continuing finishes it."""
    from langchain_core.messages import AIMessage

    from accord.graphs import Router, Step, Workflow
    from accord.records import AuditKind, ThreadStatus

    app = f"accord-blip-{uuid.uuid4().hex[:8]}"
    thread = f"blip-{uuid.uuid4().hex[:10]}"
    calls = {"a": 0, "b": 0}
    held, cancelled = threading.Event(), []

    def a(state):
        calls["a"] += 1
        if calls["a"] == 1:  # the step after this one is written while the table is locked
            threading.Thread(target=_hold_checkpoints_then_cancel,
                             args=(postgres_url, app, held, cancelled), daemon=True).start()
            assert held.wait(30)
        return Step("b", {"messages": [AIMessage("a spoke", name="a")]})

    def b(state):
        calls["b"] += 1
        return Step("router", {
            "tasks": {state["active_task"]: {"status": "completed", "result": "finished"}},
            "messages": [AIMessage("finished", name="b")]})

    workflow = Workflow("blip", router=Router(default="a"), max_hops=10)
    workflow.node("a", a).node("b", b)
    workflow.transitions({"router": ["a", "END"], "a": ["b"], "b": ["router"]})
    config = {"configurable": {"thread_id": thread}}
    with open_saver(with_app_name(postgres_url, app)) as saver:
        graph = workflow.compile(checkpointer=saver)
        with pytest.raises(psycopg.errors.QueryCanceled):
            graph.invoke({"messages": [{"role": "user", "content": "go"}]}, config)
        assert cancelled, "no statement of the run waited for the locked table"
        record = saver.threads.get(thread)
        assert (record.status, record.error) == (ThreadStatus.RUNNING, None)
        kinds = [e.kind for e in saver.audit_log(thread)]
        assert AuditKind.RUN_FAILED not in kinds and AuditKind.DEAD_LETTERED not in kinds
        assert saver.checkpoint_ids(thread), "the steps before the failure were saved"

        out = graph.invoke(None, config)
        assert out["messages"][-1].content == "finished"
        assert saver.threads.get(thread).status is ThreadStatus.DONE
        assert calls == {"a": 1, "b": 1}  # a's step was saved: continuing started at b
