"""One writer per thread, whatever the entry point: while a run holds its thread, a second
run gets ``ThreadBusy`` at once, or waits (``accord_lock_wait``) and starts only after the
first one has ended.

- two processes on SQLite and PostgreSQL: a Python script holds a thread through
  ``graph.invoke``; meanwhile ``accord resume`` exits 2 with ``thread … is busy``, the test's
  own ``graph.invoke`` raises ``ThreadBusy``, and a waiting continue claims the thread only
  once the holder's run has ended (its claim finds the holder's run recorded as done);
- a SIGKILLed holder leaves no stale lock: the next claim succeeds with no wait;
- in one process, two concurrent ``ainvoke`` on one thread: one runs, the other is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import accord.checkpoints.locks as locks_module
import accord.checkpoints.postgres as postgres_module
from accord.agents import AgentResult, AgentSpec
from accord.checkpoints import ThreadBusy, open_async_saver, open_saver
from accord.checkpoints.locks import advisory_key
from accord.graphs import Router, Workflow
from accord.records import ThreadStatus
from accord.testing.pytest_plugin import API_KEY_ENV_VARS

DEADLINE = 90.0
"""Seconds any one awaited event may take on a loaded machine before the test fails."""

MODULE = "accord_hold_graph"

HOLD_GRAPH = '''
"""A one-agent graph whose agent holds its run until the test releases it.

The agent writes ``started`` (its pid) into ``$HOLD_DIR``, waits until ``release`` exists
there, then writes ``finished`` before it answers: the run is still going when ``finished``
appears, and ends right after.
"""

import os
import time
from pathlib import Path

from accord.agents import AgentResult, AgentSpec
from accord.graphs import Router, Workflow


def mark(folder, name):
    """Write ``name`` (this pid) at once: a reader never sees the file empty."""
    (folder / f".{name}").write_text(str(os.getpid()))
    os.replace(folder / f".{name}", folder / name)


def hold(handoff, tools):
    folder = Path(os.environ["HOLD_DIR"])
    mark(folder, "started")
    deadline = time.monotonic() + 120
    while not (folder / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the agent")
        time.sleep(0.02)
    mark(folder, "finished")
    return AgentResult(f"finished by {os.getpid()}")


def build():
    spec = AgentSpec(id="holder", purpose="Holds its thread", kind="rules", handler=hold)
    return (Workflow("hold", router=Router(default="holder"), max_hops=4).agent(spec)
            .transitions({"router": ["holder", "END"], "holder": ["router"]}))
'''

HOLDER_SCRIPT = '''
"""Runs the hold graph on a thread through graph.invoke, then writes the reply it got."""

import json
import sys
from pathlib import Path

from accord.checkpoints import open_saver
from accord.graphs.catalog import load_workflow

url, thread, folder = sys.argv[1:4]
with open_saver(url) as saver:
    graph = load_workflow("HOLD_MODULE:build").compile(checkpointer=saver)
    out = graph.invoke({"messages": [{"role": "user", "content": "hold the thread"}]},
                       {"configurable": {"thread_id": thread}})
Path(folder, ".returned").write_text(json.dumps({"reply": out["messages"][-1].content}))
Path(folder, ".returned").replace(Path(folder, "returned"))
'''.replace("HOLD_MODULE", MODULE)


# fixtures ---------------------------------------------------------------------------------------
@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema on ``base``'s database, dropped afterwards."""
    import psycopg

    schema = f"accord_writers_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database only this test uses: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/accord.db"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


class Holder:
    """The hold graph's module and a process running it; the folder where the agent signals."""

    def __init__(self, root: Path, url: str, thread: str) -> None:
        self.root = root
        self.url = url
        self.thread = thread
        self.folder = root / "hold"
        """Where the holding process's agent signals."""
        self.folder.mkdir()
        self.here = root / "here"
        """Where the agent signals when it runs in the test's process."""
        (root / f"{MODULE}.py").write_text(HOLD_GRAPH)
        (root / "holder.py").write_text(HOLDER_SCRIPT)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in API_KEY_ENV_VARS and not k.startswith("ACCORD_")}
        self.env.update(PYTHONPATH=str(root), HOLD_DIR=str(self.folder), NO_COLOR="1",
                        COLUMNS="200")
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the holding process and return once its agent runs (it holds the thread)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(self.root / "holder.py"), self.url, self.thread,
             str(self.folder)],
            cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.wait_for("started")
        assert self.path("started").read_text() == str(self.proc.pid)

    def path(self, name: str) -> Path:
        return self.folder / name

    def wait_for(self, name: str) -> None:
        """Wait (with a deadline) until the agent's folder holds ``name``."""
        deadline = time.monotonic() + DEADLINE
        while not self.path(name).exists():
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"holder exited {self.proc.returncode} before {name!r}: "
                            f"{self.proc.stderr.read() if self.proc.stderr else ''}")
            if time.monotonic() > deadline:
                pytest.fail(f"holder never wrote {name!r}")
            time.sleep(0.02)

    def release(self) -> None:
        self.path("release").touch()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``accord ARGS --db URL`` in a new process (it can load the hold graph)."""
        return subprocess.run(
            [sys.executable, "-P", "-m", "accord.cli.main", *args, "--db", self.url],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120,
            check=False)

    def finish(self) -> tuple[int, str]:
        """Wait for the holding process to exit: its exit code and what it wrote to stderr."""
        assert self.proc is not None
        _, err = self.proc.communicate(timeout=DEADLINE)
        return self.proc.returncode, err

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def holder(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Holder]:
    """A holder on this test's database; this process imports the same graph module."""
    made = Holder(tmp_path, db_url, f"t-{uuid.uuid4().hex[:10]}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    # the agent, when it runs in this process, signals in a folder of its own and never waits
    made.here.mkdir()
    (made.here / "release").touch()
    monkeypatch.setenv("HOLD_DIR", str(made.here))
    try:
        yield made
    finally:
        made.stop()


def hold_graph(saver: Any) -> Any:
    from accord.graphs.catalog import load_workflow

    return load_workflow(f"{MODULE}:build").compile(checkpointer=saver)


def observe_busy(monkeypatch: pytest.MonkeyPatch, thread: str) -> threading.Event:
    """An event set the first time a claim of ``thread`` in this process finds its lock held
    (the real lock polling runs unchanged)."""
    busy = threading.Event()
    real_poll = locks_module.poll

    def poll(try_once: Callable[[], Any], thread_id: str, wait: float) -> Any:
        def once() -> Any:
            got = try_once()
            if got is None and thread_id == thread:
                busy.set()
            return got

        return real_poll(once, thread_id, wait)

    monkeypatch.setattr(locks_module, "poll", poll)
    monkeypatch.setattr(postgres_module, "poll", poll)
    return busy


def assert_linear(saver: Any, thread: str) -> int:
    """The thread's checkpoints form one chain (no fork, no gap); returns how many."""
    newest_first = saver.checkpoint_ids(thread)
    ids = [cid for cid, _ in reversed(newest_first)]
    parents = dict(newest_first)
    assert [parents[i] for i in ids] == [None, *ids[:-1]]
    return len(ids)


# two processes ----------------------------------------------------------------------------------
def test_a_second_writer_is_refused_or_waits_until_the_first_has_ended(holder, monkeypatch):
    thread = holder.thread
    config = {"configurable": {"thread_id": thread}}
    holder.start()

    # the CLI, in a third process: one line, exit 2
    resumed = holder.cli("resume", thread)
    assert resumed.returncode == 2, resumed.stderr
    assert resumed.stderr.strip() == (
        f"error: thread {thread!r} is busy: another writer holds its lock")

    with open_saver(holder.url) as saver:
        graph = hold_graph(saver)
        # graph.invoke in this process, with no wait: refused at once, for a continue ...
        with pytest.raises(ThreadBusy, match=f"thread {thread!r} is busy"):
            graph.invoke(None, config)
        # ... and for a new request alike; neither took the thread
        with pytest.raises(ThreadBusy):
            graph.invoke({"messages": [{"role": "user", "content": "me too"}]}, config)
        record = saver.threads.get(thread)
        assert (record.status, record.epoch) == (ThreadStatus.RUNNING, 1)

        # a continue that may wait: it finds the lock held, and claims only after the holder
        claims: list[dict[str, Any]] = []
        real_begin = saver.begin_run

        def begin_run(spec: Any) -> Any:
            handle = real_begin(spec)
            claims.append({"epoch": handle.epoch, "previous": handle.previous,
                           "holder_finished": holder.path("finished").exists()})
            return handle

        monkeypatch.setattr(saver, "begin_run", begin_run)
        busy = observe_busy(monkeypatch, thread)
        outcome: dict[str, Any] = {}

        def waiter() -> None:
            try:
                outcome["out"] = graph.invoke(
                    None, {"configurable": {"thread_id": thread, "accord_lock_wait": 30}})
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                outcome["error"] = exc

        waiting = threading.Thread(target=waiter, daemon=True)
        waiting.start()
        assert busy.wait(DEADLINE), "the waiting run never met the held lock"
        assert claims == [] and waiting.is_alive()
        assert not holder.path("finished").exists()

        holder.release()
        waiting.join(DEADLINE)
        assert not waiting.is_alive()
        assert "error" not in outcome, outcome.get("error")
        code, err = holder.finish()
        assert code == 0, err
        returned = json.loads(holder.path("returned").read_text())
        reply = f"finished by {holder.proc.pid}"
        assert returned == {"reply": reply}

        # the waiter's claim came after the holder's run had ended and recorded its end
        [claim] = claims
        assert claim["holder_finished"]
        assert (claim["previous"].status, claim["previous"].epoch) == (ThreadStatus.DONE, 1)
        assert claim["epoch"] == 2
        # it continued the holder's finished thread: the agent did not run again here
        assert outcome["out"]["messages"][-1].content == reply
        assert not (holder.here / "started").exists()
        record = saver.threads.get(thread)
        assert (record.status, record.epoch) == (ThreadStatus.DONE, 2)
        assert assert_linear(saver, thread) >= 2
        assert graph.get_state(config).values["messages"][-1].content == reply


def advisory_lock_held(url: str, thread: str) -> bool:
    """Whether any PostgreSQL session holds the thread's advisory lock (``pg_locks``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        key = advisory_key(thread, schema) & 0xFFFF_FFFF_FFFF_FFFF
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s AND objid = %s AND objsubid = 1",
            (key >> 32, key & 0xFFFF_FFFF)).fetchone()
    return row[0] > 0


def test_a_killed_holder_releases_its_thread_at_once(holder):
    """No lease to wait out: the lock dies with the process (a file lock the kernel drops; a
    session advisory lock PostgreSQL drops as soon as it sees the session's socket close)."""
    thread = holder.thread
    postgres = holder.url.startswith("postgresql")
    holder.start()
    if postgres:
        assert advisory_lock_held(holder.url, thread)
    os.kill(holder.proc.pid, signal.SIGKILL)
    assert holder.finish()[0] == -signal.SIGKILL
    if postgres:  # the server ends the dead client's session on its own, without any timeout
        deadline = time.monotonic() + DEADLINE
        while advisory_lock_held(holder.url, thread):
            assert time.monotonic() < deadline, "PostgreSQL kept the dead holder's lock"
            time.sleep(0.02)

    with open_saver(holder.url) as saver:
        record = saver.threads.get(thread)
        assert (record.status, record.epoch) == (ThreadStatus.RUNNING, 1)  # never ended
        graph = hold_graph(saver)
        out = graph.invoke(None, {"configurable": {"thread_id": thread}})  # no wait allowed
        record = saver.threads.get(thread)
        assert (record.status, record.epoch) == (ThreadStatus.DONE, 2)
        assert assert_linear(saver, thread) >= 2
    # the step the kill cut short ran again, here
    assert out["messages"][-1].content == f"finished by {os.getpid()}"
    assert (holder.here / "started").read_text() == str(os.getpid())
    assert not holder.path("finished").exists()


# one process ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
async def test_two_concurrent_ainvokes_on_one_thread(backend, tmp_path, request):
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path}/accord.db"
    entered: list[int] = []
    release = threading.Event()

    def hold(handoff, tools) -> AgentResult:
        entered.append(1)
        if len(entered) > 1:  # both got in: no need to wait, the test fails below
            release.set()
        if not release.wait(DEADLINE):
            raise TimeoutError("never released")
        return AgentResult("held and done")

    workflow = (Workflow("two", router=Router(default="holder"), max_hops=4)
                .agent(AgentSpec(id="holder", purpose="Holds", kind="rules", handler=hold))
                .transitions({"router": ["holder", "END"], "holder": ["router"]}))
    config = {"configurable": {"thread_id": "t-two"}}

    async with AsyncExitStack() as stack:
        if backend == "postgres":
            url = stack.enter_context(postgres_schema(url))
        saver = await stack.enter_async_context(open_async_saver(url))
        graph = workflow.compile(checkpointer=saver)

        async def attempt(text: str) -> Any:
            try:
                return await graph.ainvoke({"messages": [{"role": "user", "content": text}]},
                                           config)
            except ThreadBusy:
                release.set()  # the other one holds the thread: let it finish
                raise

        results = await asyncio.wait_for(
            asyncio.gather(attempt("first"), attempt("second"), return_exceptions=True),
            DEADLINE)
        record = await saver._offload(saver.threads.get, "t-two")
        values = (await graph.aget_state(config)).values

    done = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], ThreadBusy)
    assert str(refused[0]).startswith("thread 't-two' is busy")
    assert entered == [1]
    assert (record.status, record.epoch) == (ThreadStatus.DONE, 1)
    # only the winner's request is in the thread
    humans = [m.content for m in values["messages"] if m.type == "human"]
    assert len(humans) == 1 and humans[0] in ("first", "second")
    assert values["messages"][-1].content == "held and done"
