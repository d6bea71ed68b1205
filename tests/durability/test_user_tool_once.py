"""Exactly once for a user's tool that has no idempotency of its own.

A rule-based agent appends a line to a file with ``append_line`` (no ``idempotency_key``
parameter: calling it twice appends twice), then calls ``charge``, which takes an idempotency
key. A real process runs the graph through ``graph.invoke`` on accord's saver (SQLite, or a
fresh PostgreSQL schema) and SIGKILLs itself right after a tool's result is recorded in the
ledger, before the agent's step is checkpointed. The test then continues the thread with
``graph.invoke(None, config)`` in its own process:

- killed after ``append_line``: the re-run step gets the recorded result instead of calling
  the tool again; the file has one line and the reply is the uninterrupted run's;
- killed after ``charge``: ``append_line`` still runs once, while ``charge`` (idempotent by
  key, its result recorded with the run's next write, which never came) runs again, with
  the same key as the first time, and charges once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from accord.checkpoints import open_saver
from accord.graphs.catalog import load_workflow
from accord.records import AuditKind, ThreadStatus
from accord.testing.pytest_plugin import API_KEY_ENV_VARS

MODULE = "accord_append_graph"
REQUEST = {"messages": [{"role": "user", "content": "note it down and charge me"}]}

APPEND_GRAPH = '''
"""A clerk that appends a line to a file (no idempotency of its own), then charges an amount
(idempotent by key). Every call of either tool is logged to ``$APPEND_DIR/calls.jsonl``."""

import json
import os
from pathlib import Path

from langchain_core.tools import tool

from accord.agents import AgentResult, AgentSpec
from accord.graphs import Router, Workflow


def folder():
    return Path(os.environ["APPEND_DIR"])


def log_call(entry):
    fd = os.open(folder() / "calls.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps({**entry, "pid": os.getpid()}) + "\\n").encode())
    finally:
        os.close(fd)


@tool
def append_line(text: str) -> dict:
    """Append a line to the notes file."""
    log_call({"tool": "append_line"})
    with open(folder() / "notes.txt", "a") as notes:
        notes.write(text + "\\n")
    return {"lines": len((folder() / "notes.txt").read_text().splitlines())}


@tool
def charge(amount: float, idempotency_key: str = "") -> dict:
    """Charge an amount, once per idempotency key."""
    log_call({"tool": "charge", "key": idempotency_key})
    path = folder() / "charges.json"
    charges = json.loads(path.read_text()) if path.exists() else {}
    charges.setdefault(idempotency_key, amount)
    path.write_text(json.dumps(charges))
    return {"charged": charges[idempotency_key], "charges": len(charges)}


def clerk(handoff, tools):
    note = tools("append_line", text="a note")
    paid = tools("charge", amount=12.5)
    return AgentResult(f"note on line {note['lines']}; charged {paid['charged']:.2f} "
                       f"({paid['charges']} charge)")


def build():
    spec = AgentSpec(id="clerk", purpose="Takes notes and charges", kind="rules",
                     handler=clerk, tools=("append_line", "charge"))
    return (Workflow("append", router=Router(default="clerk"), max_hops=4,
                     tools=[append_line, charge])
            .agent(spec)
            .transitions({"router": ["clerk", "END"], "clerk": ["router"]}))
'''

CHILD = '''
"""Runs the clerk's graph and dies (SIGKILL) right after the ledger records ``kill_after``."""

import json
import os
import signal
import sys

from accord.checkpoints import open_saver
from accord.checkpoints.accord_saver import AccordSaver
from accord.graphs.catalog import load_workflow

url, thread, kill_after, request = sys.argv[1:5]
recorded = AccordSaver.ledger_record


def ledger_record(self, handle, key, tool, result, durable=True):
    answer = recorded(self, handle, key, tool, result, durable)
    if tool == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
    return answer


AccordSaver.ledger_record = ledger_record
with open_saver(url) as saver:
    graph = load_workflow("APPEND_MODULE:build").compile(checkpointer=saver)
    graph.invoke(json.loads(request), {"configurable": {"thread_id": thread}})
sys.exit(3)  # not reached: the process dies at the kill point
'''.replace("APPEND_MODULE", MODULE)


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema on ``base``'s database, dropped afterwards."""
    import psycopg

    schema = f"accord_once_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database only this test uses (``backend`` comes from this folder's conftest)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/accord.db"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
def graph_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The clerk's module, importable here and by the child process."""
    (tmp_path / f"{MODULE}.py").write_text(APPEND_GRAPH)
    (tmp_path / "child.py").write_text(CHILD)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return tmp_path


def calls(folder: Path) -> list[dict[str, Any]]:
    path = folder / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ledger_tools(saver: Any, thread: str) -> list[str]:
    """The tools whose results the ledger holds for the thread."""
    def read(cur: Any) -> list[str]:
        cur.execute(saver.dialect.sql(
            "SELECT tool FROM accord_ledger WHERE thread_id = %s ORDER BY tool"), (thread,))
        return [row["tool"] if isinstance(row, dict) else row[0] for row in cur.fetchall()]

    return saver._read(read)


def tool_events(saver: Any, thread: str) -> list[str]:
    return [e.details()["tool"] for e in saver.audit_log(thread) if e.kind is AuditKind.TOOL_CALL]


@pytest.mark.parametrize("kill_after", ["append_line", "charge"])
def test_a_tool_without_idempotency_runs_once_across_a_sigkill(
        graph_module, db_url, monkeypatch, kill_after):
    root = graph_module
    config = {"configurable": {"thread_id": "t-crash"}}

    # an uninterrupted run, for what the reply should be
    base = root / "base"
    base.mkdir()
    monkeypatch.setenv("APPEND_DIR", str(base))
    with open_saver(db_url) as saver:
        graph = load_workflow(f"{MODULE}:build").compile(checkpointer=saver)
        expected = graph.invoke(REQUEST, {"configurable": {"thread_id": "t-base"}})
        expected_tools = tool_events(saver, "t-base")
    assert expected["messages"][-1].content == "note on line 1; charged 12.50 (1 charge)"
    assert expected_tools == ["append_line", "charge"]

    # a real process runs the same request and dies right after the ledger records the tool
    crash = root / "crash"
    crash.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in API_KEY_ENV_VARS and not k.startswith("ACCORD_")}
    env.update(PYTHONPATH=str(root), APPEND_DIR=str(crash))
    child = subprocess.run(
        [sys.executable, "-P", str(root / "child.py"), db_url, "t-crash", kill_after,
         json.dumps(REQUEST)],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    first_calls = calls(crash)
    assert [c["tool"] for c in first_calls] == (
        ["append_line"] if kill_after == "append_line" else ["append_line", "charge"])
    assert (crash / "notes.txt").read_text() == "a note\n"

    monkeypatch.setenv("APPEND_DIR", str(crash))
    with open_saver(db_url) as saver:
        graph = load_workflow(f"{MODULE}:build").compile(checkpointer=saver)
        # the kill came inside the agent's step: its checkpoint was never written, while the
        # side effect without a key is in the ledger (a keyed one's result died with the process)
        assert saver.threads.get("t-crash").status is ThreadStatus.RUNNING
        assert graph.get_state(config).next == ("clerk",)
        assert ledger_tools(saver, "t-crash") == ["append_line"]

        out = graph.invoke(None, config)
        assert saver.threads.get("t-crash").status is ThreadStatus.DONE
        assert tool_events(saver, "t-crash") == expected_tools
        assert sorted(ledger_tools(saver, "t-crash")) == ["append_line", "charge"]

    # the side effect happened once, and the step answered as the uninterrupted run did
    assert (crash / "notes.txt").read_text() == "a note\n"
    assert out["messages"][-1].content == expected["messages"][-1].content
    every = calls(crash)
    assert every[:len(first_calls)] == first_calls
    again = every[len(first_calls):]
    # append_line was not called again; charge ran here (again, after a kill that came
    # after it), under the key of the first call
    assert [(c["tool"], c["pid"]) for c in again] == [("charge", os.getpid())]
    keys = [c["key"] for c in every if c["tool"] == "charge"]
    assert all(keys) and len(set(keys)) == 1
    assert len(keys) == (2 if kill_after == "charge" else 1)
    assert json.loads((crash / "charges.json").read_text()) == {keys[0]: 12.5}
    assert all(c["pid"] != os.getpid() for c in first_calls)
