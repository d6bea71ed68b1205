"""The workers' fault drill: threads through the runs API while workers die under them.

``accord serve --workers-queue`` and N ``accord worker`` processes on one PostgreSQL run the
support example for a seeded company with one invoice per request. A client submits every
thread through ``POST /api/runs`` (at most ``in_flight`` unfinished at once) and approves each
refund that waits for approval through ``POST /api/threads/{id}/resume``. Meanwhile, at points
spread over the run (counted in finished threads, not in seconds):

- a worker is **SIGKILLed** and a fresh one started in its place (``kills`` times);
- every database session of one worker is **terminated** (``pg_terminate_backend`` on its
  ``application_name``, as a failover or a proxy restart would; ``terminations`` times);
- where the machine allows network namespaces (root and ``ip netns``), one worker runs in a
  namespace of its own, reaching PostgreSQL over a veth pair, and its **network is cut** (the
  link set down: packets vanish, no connection is told) for ``cut_seconds``, then restored.

The verdict is read from the databases afterwards, not from what the processes said:

- every submitted thread is ``done``, or ``failed`` with a dead letter: **0 lost**;
- every side effect once: a refund per refund request (on its own invoice), a ticket per bug
  report, none twice (by case tag and by idempotency key), none missing for a done thread;
- **0 forked checkpoints**: no two checkpoints of a thread share a parent (two writers).

``make faults`` runs the full drill (1,000 threads, 4 workers) and writes
``benchmarks/FAULTS.md``; the test suite runs a small one (``tests/workers/test_fault_drill.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import psycopg

ACCORD = str(Path(sys.executable).with_name("accord"))
APP_NAME = "accord-fault"
"""``application_name`` prefix of the workers' database sessions."""
FIRST_INVOICE = 2000
FINISHED = ("done", "failed")
FAST = ["--heartbeat", "0.5", "--stalled-after", "4", "--chores-every", "1", "--grace", "5"]
"""Worker timings of the drill: a silent worker's jobs move after 4 s, chores every second."""


@dataclass(frozen=True)
class DrillSpec:
    """What the drill runs and which faults it injects."""

    url: str
    """The PostgreSQL database (or schema, through ``options``) of checkpoints and queue."""
    threads: int = 1000
    workers: int = 4
    slots: int = 8
    """Jobs each worker runs at once."""
    in_flight: int = 96
    """Threads submitted and not finished at any time."""
    kills: int = 12
    terminations: int = 2
    netns: bool | None = None
    """Cut one worker's network; None: when the machine allows it."""
    cut_seconds: float = 6.0
    stuck_after: float = 20.0
    """A thread ``running`` with no job for this long is driven again."""
    seed: int = 7
    timeout: float = 1800.0
    """Seconds the whole drill may take."""


@dataclass
class Fault:
    at: float
    """Seconds since the drill started."""
    kind: str
    worker: str
    detail: str = ""


@dataclass
class DrillReport:
    spec: DrillSpec
    seconds: float
    submitted: int
    done: int
    dead_lettered: int
    failed_without_letter: int
    lost: list[str]
    duplicates: dict[str, int]
    missing: list[str]
    forks: int
    faults: list[Fault]
    sessions_terminated: int
    netns: str
    """How the network cut went, or why it was not tried."""
    job_attempts: Counter[int]
    """Thread jobs by how many attempts they took."""
    thread_seconds: list[float]
    """Submit to finished, per thread."""
    causes: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    """(seconds, finished threads)."""

    @property
    def ok(self) -> bool:
        return (not self.lost and not self.duplicates and not self.missing and not self.forks
                and not self.failed_without_letter)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.faults if f.kind == kind)


def with_params(url: str, **params: str) -> str:
    parts = urlsplit(url)
    extra = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def with_host(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}{host}:{port}"))


def requests_of(n: int, run: str) -> list[dict[str, Any]]:
    """Per thread: its text, case tag, invoice and the side effect it must cause once."""
    out = []
    for i in range(n):
        tag, invoice = f"{run}-{i:04d}", f"INV-{FIRST_INVOICE + i:04d}"
        kind = ("approval", "approval", "refund", "ticket")[i % 4]
        text = {
            "approval": f"I was charged twice for {invoice}. Please refund $150 (case {tag}).",
            "refund": f"Please refund $5 of {invoice} (case {tag})",
            "ticket": f"The export button is broken (case {tag})",
        }[kind]
        out.append({"tag": tag, "invoice": invoice, "kind": kind, "text": text})
    return out


def seed_company(path: Path, count: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from benchmarks.load.seed import seed_invoices
    finally:
        sys.path.pop(0)
    seed_invoices(path, FIRST_INVOICE, count)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# -- the network namespace -----------------------------------------------------------------

class Netns:
    """A network namespace joined to this one by a veth pair, and a TCP forwarder on the host
    side to PostgreSQL's loopback address. ``cut()`` sets the link down, ``restore()`` up."""

    def __init__(self, target: tuple[str, int]) -> None:
        tag = f"{os.getpid() % 100000}"
        self.name = f"accord-fault-{tag}"
        self.host_if, self.ns_if = f"afh{tag}", f"afn{tag}"
        third = os.getpid() % 250
        self.host_ip, self.ns_ip = f"10.231.{third}.1", f"10.231.{third}.2"
        self.target = target
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @staticmethod
    def available() -> str | None:
        """None when the machine allows a namespace here, else why not."""
        if os.geteuid() != 0:
            return "not root"
        if shutil.which("ip") is None:
            return "no ip command"
        probe = f"accord-probe-{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode:
            return f"ip netns add failed: {made.stderr.strip()}"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return None

    def _ip(self, *args: str, ns: bool = False) -> None:
        cmd = (["ip", "netns", "exec", self.name] if ns else []) + ["ip", *args]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")

    async def start(self) -> None:
        self._ip("netns", "add", self.name)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.name)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if, ns=True)
        self._ip("link", "set", self.ns_if, "up", ns=True)
        self._ip("link", "set", "lo", "up", ns=True)
        self._server = await asyncio.start_server(self._forward, self.host_ip, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for task in (asyncio.create_task(pipe(reader, up_writer)),
                     asyncio.create_task(pipe(up_reader, writer))):
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        self._ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        self._ip("link", "set", self.host_if, "up")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.to_thread(self._teardown)

    def _teardown(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


# -- the processes ---------------------------------------------------------------------------

@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    log: Path
    app_name: str = ""


class Fleet:
    """``accord serve --workers-queue`` and the workers, in ``tmp``."""

    def __init__(self, spec: DrillSpec, tmp: Path, netns: Netns | None) -> None:
        self.spec = spec
        self.tmp = tmp
        self.netns = netns
        self.base = ""
        self.serve: Proc | None = None
        self.workers: dict[int, Proc] = {}
        self.generation = Counter[int]()
        self.logs: list[Path] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ACCORD_"))}
        env.update(ACCORD_SUPPORT_DB=str(self.tmp / "support.db"), ACCORD_LOG_JSON="1",
                   ACCORD_DB_POOL_SIZE="4", PYTHONPATH="")
        return env

    def _popen(self, name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        process = subprocess.Popen(argv, cwd=self.tmp, env=self.env(),
                                   stdout=subprocess.DEVNULL, stderr=log.open("w"),
                                   start_new_session=True)
        return process, log

    def start_serve(self) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        process, log = self._popen("serve", [ACCORD, "serve", "--db", self.spec.url, "--port",
                                             str(port), "--workers-queue"])
        self.serve = Proc("serve", process, log)

    def start_worker(self, slot: int) -> Proc:
        self.generation[slot] += 1
        name = f"w{slot}-{self.generation[slot]}"
        app_name = f"{APP_NAME}-{name}"
        url = self.spec.url
        if self.netns is not None and slot == 0:
            url = with_host(url, self.netns.host_ip, self.netns.port)
        argv = [ACCORD, "worker", "--db", with_params(url, application_name=app_name),
                "--concurrency", str(self.spec.slots), "--stuck-after",
                str(self.spec.stuck_after), *FAST]
        if self.netns is not None and slot == 0:
            argv = self.netns.command(argv)
        process, log = self._popen(f"worker-{name}", argv)
        proc = Proc(name, process, log, app_name)
        self.workers[slot] = proc
        return proc

    def kill(self, slot: int) -> Proc:
        proc = self.workers[slot]
        os.killpg(proc.process.pid, signal.SIGKILL)
        proc.process.wait()
        return proc

    def exited(self) -> list[str]:
        gone = [p for p in [self.serve, *self.workers.values()]
                if p is not None and p.process.poll() is not None]
        return [f"{p.name} exited {p.process.returncode}: {tail(p.log)}" for p in gone]

    def stop(self) -> None:
        procs = [p for p in [self.serve, *self.workers.values()] if p is not None]
        for proc in procs:
            if proc.process.poll() is None:
                os.killpg(proc.process.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.process.pid, signal.SIGKILL)
                proc.process.wait()


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


# -- the drill -------------------------------------------------------------------------------

class Drill:
    def __init__(self, spec: DrillSpec, tmp: Path, progress: Any = None) -> None:
        self.spec = spec
        self.tmp = tmp
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:6]
        self.requests = requests_of(spec.threads, self.run_id)
        self.rng = random.Random(spec.seed)
        self.netns: Netns | None = None
        self.netns_note = ""
        self.fleet: Fleet | None = None
        self.faults: list[Fault] = []
        self.sessions_terminated = 0
        self.thread_of: dict[str, str] = {}
        """Tag -> thread id."""
        self.submitted_at: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.approved: set[str] = set()
        self.timeline: list[tuple[float, int]] = []
        self.t0 = 0.0
        self._chaos_task: asyncio.Task[None] | None = None
        self._cut_started = asyncio.Event()

    # set-up ----------------------------------------------------------------------------------
    async def _setup(self) -> Fleet:
        from accord.workers.app import apply_schema

        await asyncio.to_thread(apply_schema, self.spec.url)
        seed_company(self.tmp / "support.db", self.spec.threads)
        wanted = self.spec.netns
        why_not = Netns.available() if wanted is not False else "not asked for"
        if why_not is None:
            info = psycopg.conninfo.conninfo_to_dict(self.spec.url)
            self.netns = Netns((str(info.get("host") or "127.0.0.1"),
                                int(info.get("port") or 5432)))
            await self.netns.start()
        else:
            if wanted:
                raise RuntimeError(f"a network namespace was asked for, but {why_not}")
            self.netns_note = f"not tried: {why_not}"
        fleet = Fleet(self.spec, self.tmp, self.netns)
        fleet.start_serve()
        for slot in range(self.spec.workers):
            fleet.start_worker(slot)
        await self._wait_up(fleet)
        return fleet

    async def _wait_up(self, fleet: Fleet) -> None:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                if problems := fleet.exited():
                    raise RuntimeError("; ".join(problems))
                try:
                    if (await http.get(f"{fleet.base}/metrics")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("accord serve did not answer within 120 s")
                await asyncio.sleep(0.1)
        for proc in fleet.workers.values():
            await self._worker_up(proc)

    async def _worker_up(self, proc: Proc) -> None:
        deadline = time.monotonic() + 120
        while '"worker ' not in proc.log.read_text(errors="replace") or \
                "started" not in proc.log.read_text(errors="replace"):
            if proc.process.poll() is not None:
                raise RuntimeError(f"{proc.name} exited: {tail(proc.log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not start within 120 s")
            await asyncio.sleep(0.1)

    # the client ----------------------------------------------------------------------------
    async def _submit(self, http: httpx.AsyncClient, request: dict[str, Any]) -> None:
        for attempt in range(20):
            reply = await http.post("/api/runs", json={"graph": "support",
                                                        "input": request["text"]})
            if reply.status_code == 202:
                thread_id = reply.json()["thread_id"]
                self.thread_of[request["tag"]] = thread_id
                self.submitted_at[thread_id] = time.monotonic()
                return
            if reply.status_code < 500 or attempt == 19:
                raise RuntimeError(f"POST /api/runs answered {reply.status_code}: "
                                   f"{reply.text[:200]}")
            await asyncio.sleep(0.2)

    async def _approve(self, http: httpx.AsyncClient, thread_id: str) -> None:
        reply = await http.post(f"/api/threads/{thread_id}/resume", json={
            "decisions": [{"type": "approve"}], "by": "fault-drill"})
        if reply.status_code == 202:
            self.approved.add(thread_id)
        elif reply.status_code != 409:  # 409: already answered or queued; read again later
            raise RuntimeError(f"resume of {thread_id} answered {reply.status_code}: "
                               f"{reply.text[:200]}")

    async def _client(self, fleet: Fleet) -> None:
        spec = self.spec
        pending = list(self.requests)
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with (httpx.AsyncClient(base_url=fleet.base, timeout=60, limits=limits) as http,
                    await psycopg.AsyncConnection.connect(spec.url, autocommit=True) as conn):
            deadline = time.monotonic() + spec.timeout
            while len(self.finished_at) < spec.threads or not self._chaos_task.done():
                if self._chaos_task.done() and self._chaos_task.exception():
                    raise self._chaos_task.exception()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{spec.threads - len(self.finished_at)} threads "
                                       f"unfinished after {spec.timeout:.0f} s")
                if problems := [p for p in fleet.exited() if p.startswith("serve")]:
                    raise RuntimeError(problems[0])
                open_threads = len(self.submitted_at) - len(self.finished_at)
                batch = [pending.pop(0) for _ in range(min(len(pending),
                                                           spec.in_flight - open_threads))]
                await asyncio.gather(*(self._submit(http, r) for r in batch))
                waiting = [t for t in self.submitted_at if t not in self.finished_at]
                rows = await (await conn.execute(
                    "SELECT thread_id, status FROM accord_threads WHERE thread_id = ANY(%s) "
                    "AND status IN ('done', 'failed', 'interrupted')", (waiting,))).fetchall()
                now = time.monotonic()
                answer = []
                for thread_id, status in rows:
                    if status in FINISHED:
                        self.finished_at[thread_id] = now
                    elif thread_id not in self.approved:
                        answer.append(thread_id)
                await asyncio.gather(*(self._approve(http, t) for t in answer))
                self.timeline.append((now - self.t0, len(self.finished_at)))
                if self.progress is not None:
                    self.progress(len(self.finished_at), spec.threads)
                await asyncio.sleep(0.05)

    # the faults ------------------------------------------------------------------------------
    def _plan(self) -> list[tuple[int, str]]:
        """(finished threads, fault) in order."""
        n, spec = self.spec.threads, self.spec
        plan = [(max(1, round(n * (0.05 + 0.85 * (k + 0.5) / spec.kills))), "kill")
                for k in range(spec.kills)]
        plan += [(max(1, round(n * (0.3 + 0.4 * k / max(1, spec.terminations)))), "terminate")
                 for k in range(spec.terminations)]
        if self.netns is not None:
            plan.append((max(1, round(n * 0.5)), "cut"))
        return sorted(plan)

    def _note(self, kind: str, worker: str, detail: str = "") -> None:
        self.faults.append(Fault(time.monotonic() - self.t0, kind, worker, detail))

    async def _chaos(self, fleet: Fleet) -> None:
        plan = self._plan()
        cut: asyncio.Task[None] | None = None
        while plan:
            at, kind = plan[0]
            if len(self.finished_at) < at:
                await asyncio.sleep(0.05)
                continue
            plan.pop(0)
            if kind == "cut" and self.netns is not None:
                cut = asyncio.create_task(self._cut(fleet, self.netns))
                await self._cut_started.wait()
                continue
            # a worker that runs jobs (not the one whose network is down: it could not start
            # again until the network is back, which tests the outage, not the kill)
            slots = [n for n in range(self.spec.workers)
                     if not (n == 0 and cut is not None and not cut.done())]
            slot = self.rng.choice(slots)
            proc = fleet.workers[slot]
            await self._busy(proc)
            if kind == "kill":
                fleet.kill(slot)
                self._note("kill", proc.name, "SIGKILL")
                fresh = fleet.start_worker(slot)
                self._note("restart", fresh.name)
            else:
                n = await asyncio.to_thread(terminate_sessions, self.spec.url, proc.app_name)
                self.sessions_terminated += n
                self._note("terminate", proc.name, f"{n} sessions")
        if cut is not None:
            await cut

    async def _cut(self, fleet: Fleet, netns: Netns) -> None:
        proc = fleet.workers[0]
        await self._busy(proc)
        netns.cut()
        self._note("cut", proc.name, f"network down {self.spec.cut_seconds:.0f} s")
        self._cut_started.set()
        await asyncio.sleep(self.spec.cut_seconds)  # the outage's length is the fault itself
        netns.restore()
        self._note("restore", proc.name, "network up")
        self.netns_note = (f"worker {proc.name} in namespace {netns.name} cut off for "
                           f"{self.spec.cut_seconds:.0f} s while running jobs, then restored")

    async def _busy(self, proc: Proc) -> None:
        """Wait until the worker runs jobs (a fault aimed at a worker still starting would
        test its start, not its recovery)."""
        await self._worker_up(proc)
        for _ in range(200):  # 10 s at most: a worker up but idle is faulted as it is
            if proc.process.poll() is not None or self._nothing_outstanding() \
                    or '"job started' in proc.log.read_text(errors="replace"):
                return
            await asyncio.sleep(0.05)

    def _nothing_outstanding(self) -> bool:
        return len(self.finished_at) >= self.spec.threads

    async def _watch(self, fleet: Fleet) -> None:
        """Restart a worker that died on its own (recorded: it is a finding, not a fault)."""
        while True:
            for slot, proc in list(fleet.workers.items()):
                if proc.process.poll() is not None and fleet.workers[slot] is proc:
                    self._note("died", proc.name, f"exit {proc.process.returncode}: "
                               f"{tail(proc.log, 2)}")
                    fleet.start_worker(slot)
            await asyncio.sleep(0.2)

    # the run -------------------------------------------------------------------------------
    async def run(self) -> DrillReport:
        self.fleet = fleet = await self._setup()
        try:
            self.t0 = time.monotonic()
            watcher = asyncio.create_task(self._watch(fleet))
            self._chaos_task = chaos = asyncio.create_task(self._chaos(fleet))
            try:
                await self._client(fleet)
            finally:
                watcher.cancel()
                chaos.cancel()
                if self.netns is not None:
                    self.netns.restore()
            seconds = time.monotonic() - self.t0
            await asyncio.sleep(0)
        finally:
            fleet.stop()
            if self.netns is not None:
                await self.netns.close()
        return await asyncio.to_thread(self._verdict, seconds)

    # the verdict, from the databases --------------------------------------------------------
    def _verdict(self, seconds: float) -> DrillReport:
        threads = list(self.thread_of.values())
        with psycopg.connect(self.spec.url, autocommit=True) as conn:
            status = dict(conn.execute(
                "SELECT thread_id, status FROM accord_threads WHERE thread_id = ANY(%s)",
                (threads,)).fetchall())
            errors = dict(conn.execute(
                "SELECT thread_id, error FROM accord_threads WHERE thread_id = ANY(%s) "
                "AND status = 'failed'", (threads,)).fetchall())
            lettered = {r[0] for r in conn.execute(
                "SELECT DISTINCT thread_id FROM accord_dead_letters WHERE thread_id = ANY(%s)",
                (threads,)).fetchall()}
            forks = conn.execute(
                "SELECT count(*) FROM (SELECT thread_id, parent_checkpoint_id FROM checkpoints "
                "WHERE thread_id = ANY(%s) AND checkpoint_ns = '' AND parent_checkpoint_id "
                "IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) AS f", (threads,)).fetchone()[0]
            attempts = Counter(r[0] for r in conn.execute(
                "SELECT attempts FROM procrastinate_jobs WHERE lock = ANY(%s) "
                "AND task_name LIKE 'accord.%%_thread'", (threads,)).fetchall())
        failed = {t for t, s in status.items() if s == "failed"}
        lost = sorted(t for t in threads if status.get(t) not in FINISHED)
        lost += [f"never submitted: {r['tag']}" for r in self.requests
                 if r["tag"] not in self.thread_of]
        duplicates, missing = side_effects(self.tmp / "support.db", self.requests,
                                           {tag: status.get(t) for tag, t in
                                            self.thread_of.items()})
        causes = Counter(cause_kind(e or "") for e in errors.values())
        return DrillReport(
            spec=self.spec, seconds=seconds, submitted=len(threads),
            done=sum(1 for s in status.values() if s == "done"),
            dead_lettered=len(failed & lettered), failed_without_letter=len(failed - lettered),
            lost=lost, duplicates=duplicates, missing=missing, forks=forks, faults=self.faults,
            sessions_terminated=self.sessions_terminated, netns=self.netns_note,
            job_attempts=attempts,
            thread_seconds=[self.finished_at[t] - self.submitted_at[t]
                            for t in self.finished_at if t in self.submitted_at],
            causes=causes, timeline=self.timeline)


def terminate_sessions(url: str, app_name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s AND pid <> pg_backend_pid()",
                            (app_name,)).fetchall()
    return sum(1 for (ok,) in rows if ok)


def side_effects(support_db: Path, requests: list[dict[str, Any]],
                 status: dict[str, str | None]) -> tuple[dict[str, int], list[str]]:
    """Side effects beyond one per request (by case tag, by invoice, by idempotency key), and
    requests whose thread is done without its side effect."""
    with closing(sqlite3.connect(support_db)) as conn:
        refunds = conn.execute("SELECT invoice_id, reason, idempotency_key FROM refunds "
                               "WHERE invoice_id >= 'INV-2000'").fetchall()
        tickets = conn.execute("SELECT body, idempotency_key FROM tickets").fetchall()
    extra: dict[str, int] = {}
    by_invoice = Counter(invoice for invoice, _, _ in refunds)
    keys = Counter(key for *_, key in refunds) + Counter(key for _, key in tickets)
    for key, n in keys.items():
        if n > 1:
            extra[f"key:{key}"] = n - 1
    ticket_tags = Counter()
    for body, _ in tickets:
        for word in body.replace(")", " ").split():
            ticket_tags[word] += 1
    missing = []
    for request in requests:
        tag, invoice = request["tag"], request["invoice"]
        paid, filed = by_invoice.get(invoice, 0), ticket_tags.get(tag, 0)
        if paid > 1:
            extra[f"refund:{invoice}"] = paid - 1
        if filed > 1:
            extra[f"ticket:{tag}"] = filed - 1
        if status.get(tag) == "done":
            wanted = {"approval": paid, "refund": paid, "ticket": filed}[request["kind"]]
            if wanted == 0:
                missing.append(f"{request['kind']} {tag}")
    return extra, missing


def cause_kind(error: str) -> str:
    head = error.split(": ", 2)
    text = ": ".join(head[:2]) if len(head) > 1 else error
    return "".join(ch if not ch.isdigit() else "#" for ch in text)[:90]


# -- the report --------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def markdown(report: DrillReport, plot: str | None) -> str:
    spec = report.spec
    attempts = ", ".join(f"{n} attempt{'s' if n != 1 else ''}: {c}"
                         for n, c in sorted(report.job_attempts.items()))
    rows = [
        ("threads submitted through the API", str(report.submitted)),
        ("worker processes (job slots each)", f"{spec.workers} ({spec.slots})"),
        ("workers SIGKILLed and restarted", str(report.count("kill"))),
        ("database sessions terminated (times)",
         f"{report.sessions_terminated} ({report.count('terminate')})"),
        ("network cut", report.netns or "–"),
        ("workers that died on their own", str(report.count("died"))),
        ("done", str(report.done)),
        ("failed, dead-lettered", str(report.dead_lettered)),
        ("**lost**", f"**{len(report.lost)}**"),
        ("**duplicate side effects**", f"**{sum(report.duplicates.values())}**"),
        ("**side effects missing for a done thread**", f"**{len(report.missing)}**"),
        ("**forked checkpoints**", f"**{report.forks}**"),
        ("seconds (threads finished per second)",
         f"{report.seconds:.0f} ({report.submitted / max(report.seconds, 1e-9):.1f})"),
        ("thread time p50 / p95 / max (s)",
         f"{percentile(report.thread_seconds, 0.5):.1f} / "
         f"{percentile(report.thread_seconds, 0.95):.1f} / "
         f"{max(report.thread_seconds, default=0):.1f}"),
        ("thread jobs by attempts", attempts or "–"),
    ]
    lines = [
        "# Fault drill: accord's workers under SIGKILL, dropped sessions and a cut network",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores with "
        "`make faults` (`benchmarks/faults.py`; the suite runs a small drill in "
        "`tests/workers/test_fault_drill.py`).",
        "",
        (__doc__ or "").split("\n\n", 1)[1].split("``make faults``")[0].strip(),
        "",
        f"**Verdict: {'passed' if report.ok else 'FAILED'}.**",
        "",
        "| | |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], "",
    ]
    if plot:
        lines += [f"![threads finished over time, faults marked]({plot})", ""]
    if report.causes:
        lines += ["Causes of the failed threads:", ""]
        lines += [f"- {n} × {cause}" for cause, n in report.causes.most_common()] + [""]
    lines += ["Faults, in order (seconds from the first submission):", "",
              "| s | fault | worker | detail |", "|---:|---|---|---|"]
    lines += [f"| {f.at:.1f} | {f.kind} | {f.worker} | {f.detail} |" for f in report.faults]
    if report.lost or report.duplicates or report.missing:
        lines += ["", "Problems:", ""]
        lines += [f"- lost: {t}" for t in report.lost[:20]]
        lines += [f"- twice: {k} (+{n})" for k, n in list(report.duplicates.items())[:20]]
        lines += [f"- missing: {m}" for m in report.missing[:20]]
    return "\n".join(lines) + "\n"


def plot_timeline(report: DrillReport, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    xs = [t for t, _ in report.timeline]
    ax.plot(xs, [n for _, n in report.timeline], color="#1f77b4", label="threads finished")
    colours = {"kill": "#d62728", "terminate": "#ff7f0e", "cut": "#9467bd",
               "restore": "#2ca02c", "died": "black"}
    seen: set[str] = set()
    for fault in report.faults:
        if fault.kind in colours:
            ax.axvline(fault.at, color=colours[fault.kind], linestyle="--", linewidth=1,
                       label=None if fault.kind in seen else fault.kind)
            seen.add(fault.kind)
    ax.set_xlabel("seconds")
    ax.set_ylabel("threads finished")
    ax.set_title(f"{report.submitted} threads on {report.spec.workers} workers under faults")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name if path.parent.name != "plots" else f"plots/{path.name}"


def scratch_database(admin_url: str) -> str:
    name = f"accord_faults_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}", query=""))


def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=os.environ.get(
        "ACCORD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server's URL; the drill creates and drops a database of its own")
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--terminations", type=int, default=2)
    parser.add_argument("--no-netns", action="store_true", help="do not cut a worker's network")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("FAULTS.md"))
    args = parser.parse_args(argv)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the fleet on the way out
    url = scratch_database(args.postgres)
    spec = DrillSpec(url=url, threads=args.threads, workers=args.workers, kills=args.kills,
                     terminations=args.terminations, netns=False if args.no_netns else None)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"accord-faults-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn()) as bar:
            task = bar.add_task("fault drill: threads finished", total=spec.threads)
            drill = Drill(spec, tmp, lambda n, _total: bar.update(task, completed=n))
            report = asyncio.run(drill.run())
    finally:
        drop_database(args.postgres, url)
    plot = plot_timeline(report, args.out.parent / "plots" / "faults.png")
    args.out.write_text(markdown(report, plot))
    print(markdown(report, plot))
    print(f"written to {args.out}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
