"""Every run ends in a state the thread index shows, on memory, SQLite and PostgreSQL.

- A run stopped by the hop budget or by a node that raises leaves its thread ``failed`` with
  the cause (thread index, ``run_failed`` audit event, ``accord show``); a new request is
  refused with ``ThreadUnfinished``; once the cause is fixed, continuing finishes the thread.
- A corrupt stored checkpoint is one typed error (``CorruptCheckpoint``), one CLI line and exit
  code 2; history still lists every checkpoint; fork and replay work from intact ones.
- A request whose process died before its first checkpoint is recorded: continuing the thread
  runs it.
- A writer that lost its thread's lock cannot write to the thread again (fencing).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from accord.checkpoints import (
    CorruptCheckpoint,
    RunKind,
    RunSpec,
    WriterFenced,
    open_saver,
)
from accord.checkpoints.runs import RUN_KEY
from accord.engine import ThreadUnfinished
from accord.engine.inputs import dump_request, request_task, validate_request
from accord.errors import AccordError
from accord.graphs import HopBudgetExceeded, Workflow
from accord.records import AuditKind, ThreadStatus

FLOW_MODULE = "runstates_flow"
FLOW_REF = f"{FLOW_MODULE}:build"
FLOW_SOURCE = '''
"""A small loop: router -> a -> b -> a ... until `a` has spoken `laps` times, then a finishes."""

import threading
from pathlib import Path

from langchain_core.messages import AIMessage

from accord.graphs import PredicateRule, Router, Step, Workflow


def _held_at(marker):
    def predicate(text, state):
        Path(marker).write_text("claimed")  # the request is claimed, nothing is checkpointed yet
        threading.Event().wait()  # until the process is killed
        return False

    return predicate


def build(max_hops=50, broken=False, laps=3, hold=None):
    rules = (PredicateRule("a", _held_at(hold), reason="held"),) if hold else ()
    workflow = Workflow("runstates", router=Router(default="a", rules=rules), max_hops=max_hops)

    def a(state):
        spoken = sum(1 for m in state["messages"] if getattr(m, "name", None) == "a")
        if spoken >= laps:
            return Step("router", {
                "tasks": {state["active_task"]: {"status": "completed", "result": "finished"}},
                "messages": [AIMessage("finished", name="a")],
            })
        return Step("b", {"messages": [AIMessage(f"lap {spoken}", name="a")]})

    def b(state):
        if broken:
            raise RuntimeError("printer on fire")
        return Step("a")

    workflow.node("a", a).node("b", b)
    workflow.transitions({"router": ["a", "END"], "a": ["b", "router"], "b": ["a"]})
    return workflow
'''

REQUEST = {"messages": [{"role": "user", "content": "go"}]}
CLI_TIMEOUT = 120


# backends -----------------------------------------------------------------------------------
def _as_url(conninfo: str) -> str:
    """psycopg's `key=value` conninfo as the postgresql:// URL accord opens."""
    info = conninfo_to_dict(conninfo)
    user = quote(info.pop("user", ""), safe="")
    password = info.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host, port, db = info.pop("host", "localhost"), info.pop("port", "5432"), info.pop("dbname", "")
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in info.items())
    return f"postgresql://{auth}{host}:{port}/{db}" + (f"?{query}" if query else "")


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose `search_path` is a fresh schema, dropped after the test."""
    schema = f"accord_runstates_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    options = f"{conninfo_to_dict(postgres_url).get('options', '')} -csearch_path={schema}"
    yield _as_url(make_conninfo(postgres_url, options=options.strip()))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend that outlives a process."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    return request.getfixturevalue("pg_schema_url")


# the workflow and the CLI -------------------------------------------------------------------
@pytest.fixture
def flow(tmp_path: Path) -> ModuleType:
    """The loop workflow's module, written where the CLI subprocess imports it from."""
    path = tmp_path / f"{FLOW_MODULE}.py"
    path.write_text(FLOW_SOURCE)
    spec = importlib.util.spec_from_file_location(FLOW_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def workflow(flow: ModuleType, **options: Any) -> Workflow:
    """The loop workflow, recorded in the thread index under the name the CLI loads it by."""
    built = flow.build(**options)
    built.source = FLOW_REF
    return built


class Cli:
    """The `accord` CLI in real subprocesses that can import the loop workflow's module."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {**os.environ, "PYTHONPATH": str(folder), "COLUMNS": "200", "NO_COLOR": "1",
                    "ACCORD_DB_URL": f"sqlite:///{folder}/default.db"}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.together(args)[0]

    def together(self, *calls: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Several commands at once (each in its own process); their results in order."""
        procs = [subprocess.Popen([sys.executable, "-P", "-m", "accord.cli.main", *args],
                                  cwd=self.folder, env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for args in calls]
        done = []
        for proc in procs:
            try:
                out, err = proc.communicate(timeout=CLI_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return done


@pytest.fixture
def accord(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def new_config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}}


def thread_of(config: dict[str, Any]) -> str:
    return config["configurable"]["thread_id"]


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def assert_failed_visibly(saver: Any, config: dict[str, Any], cause: str, node: str) -> None:
    """The thread index says failed with the cause; the audit log has one run_failed event."""
    record = saver.threads.get(thread_of(config))
    assert record is not None
    assert (record.status, record.error, record.run_id) == (ThreadStatus.FAILED, cause, None)
    failed = [e for e in saver.audit_log(thread_of(config)) if e.kind is AuditKind.RUN_FAILED]
    assert [(e.details()["error"], e.node) for e in failed] == [(cause, node)]
    assert saver.checkpoint_ids(thread_of(config)), "the steps before the failure were saved"


def assert_new_request_refused(graph: Any, saver: Any, config: dict[str, Any], cause: str) -> None:
    before = saver.threads.get(thread_of(config))
    with pytest.raises(ThreadUnfinished) as refused:
        graph.invoke({"messages": [{"role": "user", "content": "another one"}]}, config)
    assert refused.value.thread_id == thread_of(config) and refused.value.error == cause
    assert cause in str(refused.value)
    after = saver.threads.get(thread_of(config))
    assert (after.status, after.epoch, after.error) == (before.status, before.epoch, before.error)


def assert_finished(out: dict[str, Any], saver: Any, config: dict[str, Any]) -> None:
    record = saver.threads.get(thread_of(config))
    assert (record.status, record.error, record.pending) == (ThreadStatus.DONE, None, None)
    assert out["messages"][-1].content == "finished"
    assert [m.content for m in out["messages"] if isinstance(m, HumanMessage)] == ["go"]


# failed runs --------------------------------------------------------------------------------
def test_an_exhausted_hop_budget_fails_the_thread_visibly_and_a_larger_budget_finishes_it(
    db_url: str, flow: ModuleType
) -> None:
    config = new_config()
    with open_saver(db_url) as saver:
        tight = workflow(flow, max_hops=4).compile(checkpointer=saver)
        with pytest.raises(HopBudgetExceeded) as stopped:
            tight.invoke(REQUEST, config)
        cause = str(stopped.value)
        assert "hop budget of 4 exhausted" in cause and "\n" not in cause
        assert_failed_visibly(saver, config, cause, stopped.value.node)
        assert_new_request_refused(tight, saver, config, cause)

        roomy = workflow(flow, max_hops=50).compile(checkpointer=saver)
        out = roomy.invoke(None, config)
        assert_finished(out, saver, config)
        assert saver.threads.get(thread_of(config)).epoch == 2  # the refused request never claimed it


def test_a_node_that_raises_fails_the_thread_visibly_and_the_fixed_node_finishes_it(
    db_url: str, flow: ModuleType, accord: Cli
) -> None:
    config = new_config()
    thread = thread_of(config)
    cause = "RuntimeError: printer on fire"
    with open_saver(db_url) as saver:
        broken = workflow(flow, broken=True).compile(checkpointer=saver)
        with pytest.raises(RuntimeError, match="printer on fire"):
            broken.invoke(REQUEST, config)
        assert_failed_visibly(saver, config, cause, "b")
        assert_new_request_refused(broken, saver, config, cause)

        if db_url.startswith("sqlite"):  # what another process shows: the CLI reads the index
            shown, listed = accord.together(("show", thread, "--db", db_url),
                                            ("threads", "--status", "failed", "--json", "--db", db_url))
            assert shown.returncode == 0, shown.stderr
            assert "Traceback" not in shown.stdout + shown.stderr
            printed = shown.stdout.splitlines()
            assert printed[:2] == [f"{thread} ({FLOW_REF}) failed", cause]  # one line, the cause
            assert printed[-1].endswith("checkpoints; next: b")
            assert listed.returncode == 0, listed.stderr
            assert [(r["thread_id"], r["status"], r["error"]) for r in json.loads(listed.stdout)] == [
                (thread, "failed", cause)]

        fixed = workflow(flow).compile(checkpointer=saver)
        out = fixed.invoke(None, config)
        assert_finished(out, saver, config)
        assert [e.kind for e in saver.audit_log(thread)].count(AuditKind.RUN_FAILED) == 1


# corrupt checkpoints ------------------------------------------------------------------------
def corrupt_garbage(conn: sqlite3.Connection, thread: str, checkpoint_id: str) -> None:
    conn.execute("UPDATE checkpoints SET checkpoint = ? WHERE thread_id = ? AND checkpoint_id = ?",
                 (b"\xc1\xff\x00 not a checkpoint", thread, checkpoint_id))


def corrupt_type(conn: sqlite3.Connection, thread: str, checkpoint_id: str) -> None:
    conn.execute("UPDATE checkpoints SET type = 'accord-test-unknown' WHERE thread_id = ?"
                 " AND checkpoint_id = ?", (thread, checkpoint_id))


CORRUPTIONS = {"garbage": corrupt_garbage, "unknown_type": corrupt_type}


def finished_then_corrupted(tmp_path: Path, flow: ModuleType, how: str) -> tuple[str, str, list]:
    """A finished thread on SQLite whose latest checkpoint was then damaged in the database."""
    path = tmp_path / "accord.db"
    url = f"sqlite:///{path}"
    config = new_config()
    with open_saver(url) as saver:
        out = workflow(flow).compile(checkpointer=saver).invoke(REQUEST, config)
        assert out["messages"][-1].content == "finished"
        ids = saver.checkpoint_ids(thread_of(config))
    conn = sqlite3.connect(path)
    with conn:
        CORRUPTIONS[how](conn, thread_of(config), ids[0][0])
    conn.close()
    return url, thread_of(config), ids


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_one_clear_error_and_the_intact_ones_stay_usable(
    tmp_path: Path, flow: ModuleType, accord: Cli, how: str
) -> None:
    url, thread, ids = finished_then_corrupted(tmp_path, flow, how)
    corrupt, intact = ids[0][0], ids[1][0]
    assert ids[0][1] == intact

    with open_saver(url) as saver:
        graph = workflow(flow).compile(checkpointer=saver)
        with pytest.raises(CorruptCheckpoint) as unreadable:
            graph.get_state({"configurable": {"thread_id": thread}})
        assert isinstance(unreadable.value, AccordError)
        message = one_line(str(unreadable.value))
        assert repr(thread) in message
        assert corrupt in message or "its latest checkpoint" in message
        assert unreadable.value.checkpoint_id in (None, corrupt)
        # the checkpoint before it reads fine: the run stood there before `a` finished it
        before = graph.get_state({"configurable": {"thread_id": thread, "checkpoint_id": intact}})
        assert before.next == ("a",) and before.values["messages"][0].content == "go"

    shown, listed, forked = accord.together(
        ("show", thread, "--db", url), ("history", thread, "--json", "--db", url),
        ("fork", thread, "--at", intact, "--thread", f"{thread}-fork", "--json", "--db", url))
    assert shown.returncode == 2, (shown.stdout, shown.stderr)
    assert "Traceback" not in shown.stdout + shown.stderr
    line = one_line(shown.stderr)
    assert line.startswith("error: ") and repr(thread) in line and "cannot be read" in line

    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [e["checkpoint_id"] for e in entries] == [cid for cid, _ in ids]
    assert [e["checkpoint_id"] for e in entries if e["error"]] == [corrupt]
    assert corrupt in entries[0]["error"] and repr(thread) in entries[0]["error"]

    assert forked.returncode == 0, forked.stderr
    assert json.loads(forked.stdout)["thread_id"] == f"{thread}-fork"
    went_on = accord("resume", f"{thread}-fork", "--json", "--db", url)
    assert went_on.returncode == 0, went_on.stderr
    outcome = json.loads(went_on.stdout)
    assert (outcome["status"], outcome["reply"], outcome["error"]) == ("done", "finished", None)
    with open_saver(url) as saver:
        assert saver.threads.get(f"{thread}-fork").status is ThreadStatus.DONE
        assert saver.checkpoint_ids(thread) == ids  # the original is untouched


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_replay_from_an_intact_checkpoint_of_a_corrupt_thread(
    tmp_path: Path, flow: ModuleType, accord: Cli, how: str
) -> None:
    url, thread, ids = finished_then_corrupted(tmp_path, flow, how)
    replayed = accord("replay", thread, "--from", ids[1][0], "--json", "--db", url)
    assert replayed.returncode == 0, replayed.stderr
    outcome = json.loads(replayed.stdout)
    assert (outcome["status"], outcome["reply"]) == ("done", "finished")


# a request cut short before its first checkpoint ---------------------------------------------
def test_a_request_claimed_but_never_checkpointed_runs_when_the_thread_is_continued(
    db_url: str, flow: ModuleType
) -> None:
    """The claiming process died right after the claim (its lock went with it)."""
    config = new_config()
    thread = thread_of(config)
    request = validate_request({"messages": [{"role": "user", "content": "go"}]})
    with open_saver(db_url) as saver:
        graph = workflow(flow).compile(checkpointer=saver)
        handle = saver.begin_run(RunSpec(thread, RunKind.NEW, graph=FLOW_REF,
                                         input=dump_request(request),
                                         task_id=request_task(request)))
        saver._release(handle)  # the process is gone: its lock is released, the run never ends
        record = saver.threads.get(thread)
        assert record.status is ThreadStatus.RUNNING and record.input is not None
        assert saver.checkpoint_ids(thread) == []

        with pytest.raises(ThreadUnfinished):  # the recorded request comes first
            graph.invoke({"messages": [{"role": "user", "content": "another one"}]}, config)
        out = graph.invoke(None, config)
        assert_finished(out, saver, config)
        assert [m.id for m in out["messages"] if isinstance(m, HumanMessage)] == [
            request["messages"][0].id]  # the very request that was recorded
        assert saver.threads.get(thread).input is None


KILLED_RUN = f"""
import sys
from accord.checkpoints import open_saver
import {FLOW_MODULE} as flow

url, thread, marker = sys.argv[1:]
with open_saver(url) as saver:
    graph = flow.build(hold=marker)
    graph.source = "{FLOW_REF}"
    graph.compile(checkpointer=saver).invoke(
        {{"messages": [{{"role": "user", "content": "go"}}]}}, {{"configurable": {{"thread_id": thread}}}})
"""


def wait_for(path: Path, proc: subprocess.Popen, log: Path, deadline: float = 90.0) -> None:
    """Until the process under test writes ``path`` (it fails the test if the process exits)."""
    end = time.monotonic() + deadline
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run exited with {proc.returncode} before it was claimed:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > end:
            pytest.fail(f"the run did not reach its claim within {deadline:.0f}s")
        time.sleep(0.05)


def test_a_request_killed_before_its_first_checkpoint_is_not_lost(
    durable_url: str, flow: ModuleType, tmp_path: Path
) -> None:
    thread = f"t-{uuid.uuid4().hex}"
    marker = tmp_path / "claimed"
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    log = tmp_path / "killed_run.log"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with log.open("wb") as output:
        proc = subprocess.Popen([sys.executable, "-P", str(script), durable_url, thread,
                                 str(marker)], cwd=tmp_path, env=env, stdout=output,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(marker, proc, log)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

    config = {"configurable": {"thread_id": thread, "accord_lock_wait": 60}}
    with open_saver(durable_url) as saver:
        record = saver.threads.get(thread)
        assert record.status is ThreadStatus.RUNNING and record.graph == FLOW_REF
        assert record.input["messages"][0]["data"]["content"] == "go"
        assert saver.checkpoint_ids(thread) == []
        out = workflow(flow).compile(checkpointer=saver).invoke(None, config)
        assert_finished(out, saver, config)
        assert saver.threads.get(thread).input is None


# fencing --------------------------------------------------------------------------------------
def claimed_twice(saver: Any, thread: str) -> tuple[Any, Any]:
    """Run A claims the thread and loses its lock; run B claims the thread after it."""
    a = saver.begin_run(RunSpec(thread, RunKind.NEW, graph="fencing",
                                input={"messages": []}))
    saver._release(a)  # A's lock is gone (its session ended); A itself runs on
    b = saver.begin_run(RunSpec(thread, RunKind.CONTINUE, graph="fencing"))
    assert (a.epoch, b.epoch) == (1, 2)
    return a, b


def a_config(thread: str, handle: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": "", RUN_KEY: handle}}


def put_a_step(saver: Any, thread: str, a: Any) -> None:
    """A checkpoint with a node left to run: the saver writes it at once."""
    saver.put(a_config(thread, a), empty_checkpoint(), {"source": "loop", "step": 1}, {})


def end_the_run(saver: Any, thread: str, a: Any) -> None:
    saver.end_run(a)


def record_after_a_held_step(saver: Any, thread: str, a: Any) -> None:
    """The input checkpoint is held back; a durable tool result writes it with the result."""
    saver.put(a_config(thread, a), empty_checkpoint(), {"source": "input", "step": -1}, {})
    saver.ledger_record(a, "refund:INV-1", "issue_refund", {"refunded": 10})


def record_a_result(saver: Any, thread: str, a: Any) -> None:
    """A durable tool result with nothing held back."""
    saver.ledger_record(a, "refund:INV-1", "issue_refund", {"refunded": 10})


FENCED_WRITES = [
    pytest.param(put_a_step, id="put"),
    pytest.param(end_the_run, id="end_run"),
    pytest.param(record_after_a_held_step, id="ledger_record_with_held_steps"),
    pytest.param(record_a_result, id="ledger_record"),
]


def assert_owned_by(saver: Any, thread: str, b: Any) -> None:
    """The thread is B's, and nothing of A's reached the database."""
    record = saver.threads.get(thread)
    assert (record.epoch, record.run_id, record.status) == (2, b.spec.run_id, ThreadStatus.RUNNING)
    assert record.head is None and saver.checkpoint_ids(thread) == []
    assert saver.audit_log(thread) == []
    assert saver._read(lambda cur: saver.dialect.recall_result(cur, thread, "refund:INV-1")) is None


@pytest.mark.parametrize("write", FENCED_WRITES)
def test_a_writer_that_lost_its_thread_cannot_write(db_url: str, write: Callable) -> None:
    thread = f"t-{uuid.uuid4().hex}"
    with open_saver(db_url) as saver:
        a, b = claimed_twice(saver, thread)
        try:
            write(saver, thread, a)
        except WriterFenced as fenced:
            assert (fenced.thread_id, fenced.epoch) == (thread, 1)
        assert_owned_by(saver, thread, b)
        try:  # however A ends, it writes nothing
            assert saver.end_run(a) is None
        except WriterFenced:
            pass
        assert_owned_by(saver, thread, b)

        end = saver.end_run(b)
        assert end is not None and end.status is ThreadStatus.DONE
        record = saver.threads.get(thread)
        assert (record.epoch, record.status, record.run_id) == (2, ThreadStatus.DONE, None)


def test_a_run_asked_for_at_an_old_epoch_is_refused_and_changes_nothing(
    db_url: str, flow: ModuleType
) -> None:
    """``accord_expect_epoch``: a run decided on what the index said a while ago (a queued job)
    claims the thread only if no run claimed it since; otherwise ``ThreadMovedOn``, nothing
    written. 0 asks for a thread the index does not know yet."""
    from accord.engine import ThreadMovedOn

    config = new_config()
    thread = thread_of(config)

    def expecting(epoch: int) -> dict[str, Any]:
        return {"configurable": {**config["configurable"], ThreadMovedOn.EXPECT_KEY: epoch}}

    with open_saver(db_url) as saver:
        graph = workflow(flow).compile(checkpointer=saver)
        assert_finished(graph.invoke(REQUEST, expecting(0)), saver, config)
        before = saver.threads.get(thread)
        ids = saver.checkpoint_ids(thread)
        for stale in (0, 2):
            with pytest.raises(ThreadMovedOn) as moved:
                graph.invoke(REQUEST, expecting(stale))
            assert (moved.value.expected, moved.value.epoch) == (stale, 1)
            assert "moved on" in str(moved.value) and "\n" not in str(moved.value)
        after = saver.threads.get(thread)
        assert (after.epoch, after.status, after.run_id) == (1, before.status, before.run_id)
        assert saver.checkpoint_ids(thread) == ids  # nothing written
        graph.invoke(REQUEST, expecting(1))
        assert saver.threads.get(thread).epoch == 2
        with pytest.raises(ValueError, match="must be an epoch"):
            graph.invoke(REQUEST, expecting(-1))  # type: ignore[arg-type]
