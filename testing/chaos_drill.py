"""A chaos drill: many requests through real worker processes while faults are injected.

``ChaosDrill(spec).run()`` starts ``concurrency`` worker processes
(``accord.testing.chaos_worker``) on one checkpoint database and a fresh copy of the sample
company's database, points them at a local fault-injecting model server
(``OpenAICompatServer`` with a :class:`~accord.testing.chaos_model.ChaosModel`, as
``OPENAI_BASE_URL``), and drives ``runs`` requests through them as an operator would: a
request, its approval, and after any trouble ``accord resume`` (continue) from whichever worker
is free. Faults:

- ``kill_worker``: a worker is SIGKILLed at a random point of a step (``kill_rate`` of steps);
  a fresh worker takes its place and another one continues the thread;
- ``latency``, ``error_rate``, ``hang_rate``: the model server's faults;
- ``corrupt_rate``: that share of model replies is corrupted, of steps store corrupt handoff
  envelopes (the recipient refuses them: a dead letter, which the drill retries as
  `accord dlq retry` would), of interrupted threads have their latest stored checkpoint damaged
  in the database before the approval (the approval fails with a dead letter; its retry
  re-enters from the newest intact checkpoint), and of approvals are first sent as a corrupt
  resume value (the engine asks again);
- ``db_drop``: on PostgreSQL, one of the workers' database sessions is terminated every few
  seconds (``pg_terminate_backend``, as a proxy or a server restart would).

The report (:class:`~accord.testing.chaos_report.ChaosReport`) is read from the databases
afterwards: every thread done or failed, none lost, no side effect twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accord.checkpoints import open_async_saver
from accord.graphs.support.db import SupportDB
from accord.testing.chaos_model import ChaosModel
from accord.testing.chaos_report import (
    ChaosReport,
    audit_counts,
    duplicate_side_effects,
    model_retries,
    percentile,
    statuses,
)
from accord.testing.chaos_worker import DAMAGES
from accord.testing.openai_server import OpenAICompatServer

__all__ = ["ChaosDrill", "ChaosSpec", "damage_latest_checkpoint", "support_requests"]

APP_NAME = "accord-chaos"
"""PostgreSQL ``application_name`` prefix of a drill's worker sessions (the only ones dropped)."""
MAX_STEPS = 24
"""Steps a thread may take (its request, approvals, recoveries) before the drill stops on it."""
KILLED = "killed"
RECOVERIES = ("retry",)


class ChaosSpec(BaseModel):
    """What a drill runs and which faults it injects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    graph: str = "support"
    """The graph (a catalog name or reference the CLI accepts)."""
    db_url: str
    """The checkpoint database (``sqlite:///…`` or ``postgresql://…``)."""
    runs: int = Field(20, ge=1)
    """Requests to send."""
    concurrency: int = Field(4, ge=1, le=64)
    """Worker processes."""
    kill_worker: bool = False
    """SIGKILL workers mid-step."""
    kill_rate: float = Field(0.25, ge=0, le=1)
    """Share of steps whose worker is killed (with ``kill_worker``)."""
    latency: float = Field(0.0, ge=0)
    """Seconds each model reply takes."""
    error_rate: float = Field(0.0, ge=0, le=1)
    """Share of model requests answered with a provider error."""
    hang_rate: float = Field(0.0, ge=0, le=1)
    """Share of model requests never answered."""
    corrupt_rate: float = Field(0.0, ge=0, le=1)
    """Share of model replies corrupted, of steps storing corrupt handoffs, of approvals whose
    thread's latest checkpoint is damaged first, and of approvals first sent corrupted."""
    db_drop: bool = False
    """Terminate the workers' database sessions at random moments (PostgreSQL)."""
    model_timeout: float = Field(3.0, gt=0)
    """Request timeout of the workers' model calls (a hang costs this per attempt)."""
    support_db: str | None = None
    """The sample company's database (a fresh copy when None)."""
    seed: int | None = None
    """Seed of every random choice of the drill."""

    def faults(self) -> dict[str, Any]:
        return {"kill_worker": self.kill_worker, "latency": self.latency,
                "error_rate": self.error_rate, "hang_rate": self.hang_rate,
                "corrupt": self.corrupt_rate, "db_drop": self.db_drop}


def support_requests(n: int, run_id: str) -> list[tuple[str, str]]:
    """``n`` support requests as (thread id, message), each carrying its own case tag."""
    shapes = (
        "Please refund $120 of INV-1004, I was charged twice (case {tag})",
        "Please refund $5 of INV-1004 (case {tag})",
        "The export button is broken (case {tag})",
        "Please cancel my subscription (case {tag})",
        "I want to speak to a manager (case {tag})",
    )
    out = []
    for i in range(n):
        tag = f"{run_id}-{i:04d}"
        out.append((f"chaos-{tag}", shapes[i % len(shapes)].format(tag=tag)))
    return out


@dataclass
class _Worker:
    proc: asyncio.subprocess.Process
    job: int | None = None


@dataclass
class _Pool:
    """Worker processes; a step goes to a free one; a killed one is replaced."""

    spec: ChaosSpec
    env: dict[str, str]
    rng: random.Random
    free: asyncio.Queue[_Worker] = field(default_factory=asyncio.Queue)
    killed: int = 0
    jobs: int = 0
    alive: list[_Worker] = field(default_factory=list)

    async def spawn(self, attempts: int = 5) -> None:
        """Start a worker; one whose start met a fault (a dropped session) is started again."""
        for attempt in range(1, attempts + 1):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-m", "accord.testing.chaos_worker", self.spec.graph,
                self.spec.db_url, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=self.env)
            assert proc.stdout is not None
            if await proc.stdout.readline():
                break
            code = await proc.wait()
            if attempt == attempts:
                raise RuntimeError(f"chaos worker exited on start {attempts} times (exit {code})")
        worker = _Worker(proc)
        self.alive.append(worker)
        await self.free.put(worker)

    async def step(self, thread: str, op: str, message: str | None,
                   damage: str | None = None) -> tuple[dict[str, Any], float]:
        """Run one step on a free worker: its answer and when the worker took it."""
        worker = await self.free.get()
        taken = time.monotonic()
        self.jobs += 1
        job = self.jobs
        worker.job = job
        assert worker.proc.stdin is not None and worker.proc.stdout is not None
        line = json.dumps({"id": job, "thread": thread, "op": op, "message": message,
                           "damage": damage})
        timer = None
        if self.spec.kill_worker and self.rng.random() < self.spec.kill_rate:
            delay = self.rng.uniform(0.0, 1.5)
            timer = asyncio.get_running_loop().call_later(delay, self._kill, worker, job)
        try:
            worker.proc.stdin.write((line + "\n").encode())
            await worker.proc.stdin.drain()
            answer = await worker.proc.stdout.readline()
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
        if timer is not None:
            timer.cancel()
        if not answer:  # the worker died mid-step: replace it, tell the thread
            await worker.proc.wait()
            self.alive.remove(worker)
            await self.spawn()
            return {"status": KILLED}, taken
        worker.job = None
        await self.free.put(worker)
        return json.loads(answer), taken

    def _kill(self, worker: _Worker, job: int) -> None:
        if worker.job == job and worker.proc.returncode is None:
            self.killed += 1
            worker.proc.send_signal(signal.SIGKILL)

    async def close(self) -> None:
        for worker in self.alive:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in self.alive:
            try:
                await asyncio.wait_for(worker.proc.wait(), 30)
            except TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()


def _next_op(answer: dict[str, Any], rng: random.Random, corrupt_rate: float) -> tuple[str | None, bool]:
    """The thread's next step after ``answer`` (None: the thread is finished), and whether the
    step was a recovery."""
    status, error = answer.get("status"), answer.get("error") or ""
    if status == KILLED:
        return "continue", True
    if status == "done":
        return None, False
    if "cannot be read" in error:  # a damaged stored checkpoint: on from the newest intact one
        return "retry", True
    if status == "interrupted":
        return ("garble" if rng.random() < corrupt_rate else "approve"), False
    if status == "failed":
        if "was approved but failed" in error:
            return None, False  # a business rule refused the action: the thread is failed
        return ("retry" if answer.get("letter") else "continue"), True
    if "waiting for a decision" in error:
        return "approve", True
    if "is finished" in error:
        return None, False
    if "unknown thread" in error or "no saved checkpoint" in error:
        return "run", True
    return "continue", True  # busy, fenced, a dropped session: go on from the checkpoint


DAMAGED = b"\xc1\xff\x00 damaged by accord chaos"
"""What a damaged stored value holds instead of its bytes."""


def damage_latest_checkpoint(db_url: str, thread_id: str) -> str | None:
    """Overwrite what the thread's latest checkpoint stores with bytes that do not decode, as
    a torn write or a bad hand edit would (SQLite: the checkpoint; PostgreSQL: the value of a
    channel that checkpoint wrote). Returns the damaged checkpoint's id."""
    if db_url.startswith("postgres"):
        return _damage_postgres(db_url, thread_id)
    import sqlite3
    from contextlib import closing

    from accord.checkpoints.urls import parse_url

    with closing(sqlite3.connect(str(parse_url(db_url).path), timeout=30)) as conn, conn:
        row = conn.execute("SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND "
                           "checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 1",
                           (thread_id,)).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE checkpoints SET checkpoint = ? WHERE thread_id = ? AND "
                     "checkpoint_ns = '' AND checkpoint_id = ?", (DAMAGED, thread_id, row[0]))
        return str(row[0])


def _damage_postgres(db_url: str, thread_id: str) -> str | None:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT checkpoint_id, checkpoint -> 'channel_versions' FROM checkpoints WHERE "
            "thread_id = %s AND checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 2",
            (thread_id,)).fetchall()
        if not rows:
            return None
        head, versions = rows[0][0], rows[0][1] or {}
        before = (rows[1][1] or {}) if len(rows) > 1 else {}
        written = [(ch, str(v)) for ch, v in versions.items() if before.get(ch) != v]
        damaged = conn.execute(  # only the head holds these versions: only it is damaged
            "UPDATE checkpoint_blobs SET blob = %s WHERE thread_id = %s AND checkpoint_ns = ''"
            " AND (channel, version) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            " AND type <> 'empty'",
            (DAMAGED, thread_id, [c for c, _ in written], [v for _, v in written])).rowcount
        return str(head) if damaged else None


@dataclass
class ChaosDrill:
    """One drill (``await drill.run(on_progress)``)."""

    spec: ChaosSpec
    _run_id: str = ""

    def _env(self, base_url: str, support_db: Path, run_id: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
        env.update({"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "chaos",
                    "ACCORD_SUPPORT_DB": str(support_db),
                    "ACCORD_MODEL_TIMEOUT": str(self.spec.model_timeout),
                    "PGAPPNAME": f"{APP_NAME}-{run_id}"})
        return env

    async def run(self, on_progress: Callable[[int], None] | None = None) -> ChaosReport:
        spec = self.spec
        rng = random.Random(spec.seed)
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
        self._run_id = run_id
        with tempfile.TemporaryDirectory(prefix="accord-chaos-") as tmp:
            support_db = Path(spec.support_db) if spec.support_db else Path(tmp) / "support.db"
            SupportDB(support_db).connect().close()  # seeded once, before the workers start
            model = ChaosModel(spec.error_rate, spec.hang_rate, spec.corrupt_rate,
                               seed=rng.getrandbits(32))
            with OpenAICompatServer(responder=model, latency=spec.latency) as server:
                pool = _Pool(spec, self._env(server.base_url, support_db, run_id), rng)
                requests = support_requests(spec.runs, run_id)
                took, tally, dropped = await self._drive(pool, requests, rng, on_progress)
                model_requests, faults = server.requests, server.faults
            report = await self._tally(requests, took, tally, dropped, pool, support_db,
                                       run_id, model_requests, len(faults))
        return report

    async def _drive(self, pool: _Pool, requests: list[tuple[str, str]], rng: random.Random,
                     on_progress: Callable[[int], None] | None
                     ) -> tuple[dict[str, float], Counter[str], int]:
        spec = self.spec
        await asyncio.gather(*(pool.spawn() for _ in range(spec.concurrency)))
        took: dict[str, float] = {}
        tally: Counter[str] = Counter()
        finished = 0
        stop = asyncio.Event()
        damages = sorted(DAMAGES)

        async def thread(thread_id: str, message: str) -> None:
            nonlocal finished
            start: float | None = None
            op: str | None = "run"
            for _ in range(MAX_STEPS):
                # an operator's recovery (a retried letter, a replay) runs undamaged, so that
                # a thread under a high corrupt rate still gets through within MAX_STEPS
                damage = rng.choice(damages) if (op not in RECOVERIES and rng.random()
                                                 < spec.corrupt_rate) else None
                if op == "approve" and rng.random() < spec.corrupt_rate and (
                        await asyncio.to_thread(damage_latest_checkpoint, spec.db_url, thread_id)):
                    tally["checkpoints_damaged"] += 1
                answer, taken = await pool.step(thread_id, op, message, damage)
                start = taken if start is None else start
                tally["handoffs_damaged"] += int(answer.get("damaged") or 0)
                tally[f"op:{op}"] += 1
                tally["replays"] += "cannot be read" in (answer.get("error") or "")
                op, recovered = _next_op(answer, rng, spec.corrupt_rate)
                tally["recoveries"] += recovered
                if op is None:
                    break
            took[thread_id] = time.monotonic() - (start or time.monotonic())
            finished += 1
            if on_progress is not None:
                on_progress(finished)

        dropper = asyncio.create_task(self._drop_sessions(rng, stop)) if spec.db_drop else None
        try:
            await asyncio.gather(*(thread(t, m) for t, m in requests))
        finally:
            stop.set()
            dropped = await dropper if dropper is not None else 0
            await pool.close()
        return took, tally, dropped

    async def _drop_sessions(self, rng: random.Random, stop: asyncio.Event) -> int:
        """Terminate the workers' PostgreSQL sessions now and then; how many were ended."""
        import psycopg

        dropped = 0
        async with await psycopg.AsyncConnection.connect(self.spec.db_url,
                                                         autocommit=True) as conn:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), rng.uniform(2.0, 6.0))
                    break
                except TimeoutError:
                    pass
                cur = await conn.execute(  # one session at a time, as a proxy or a restart
                    "SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity"
                    " WHERE application_name LIKE %s AND pid <> pg_backend_pid()"
                    " ORDER BY random() LIMIT 1) AS victim", (f"{APP_NAME}-{self._run_id}",))
                dropped += sum(1 for (ok,) in await cur.fetchall() if ok)
        return dropped

    async def _tally(self, requests: list[tuple[str, str]], took: dict[str, float],
                     tally: Counter[str], dropped: int, pool: _Pool, support_db: Path, run_id: str,
                     model_requests: list[dict[str, Any]], model_faults: int) -> ChaosReport:
        spec = self.spec
        async with open_async_saver(spec.db_url) as saver:
            records, logs = {}, []
            for thread_id, _ in requests:
                records[thread_id] = await saver._offload(saver.threads.get, thread_id)
                logs.append(await saver._offload(saver.audit_log, thread_id))
        completed, failed, lost, causes = statuses(records)
        fallbacks, trips, letters = audit_counts(logs)
        tags = [message.rsplit("case ", 1)[1].rstrip(")") for _, message in requests]
        times = sorted(took.values())
        duplicates = duplicate_side_effects(support_db, tags)
        return ChaosReport(
            graph=spec.graph,
            database="postgres" if spec.db_url.startswith("postgres") else "sqlite",
            runs=spec.runs, concurrency=spec.concurrency, faults=spec.faults(),
            completed=completed, dead_lettered=letters, failed=failed, lost=len(lost),
            duplicate_side_effects=sum(duplicates.values()), duplicates=duplicates,
            retries=model_retries(model_requests), fallbacks=fallbacks, breaker_trips=trips,
            p50_s=round(percentile(times, 0.5), 3), p95_s=round(percentile(times, 0.95), 3),
            workers_killed=pool.killed, db_sessions_dropped=dropped,
            recoveries=tally["recoveries"], handoffs_damaged=tally["handoffs_damaged"],
            checkpoints_damaged=tally["checkpoints_damaged"],
            letters_retried=tally["op:retry"], replays=tally["replays"],
            model_requests=len(model_requests), model_faults=model_faults,
            failures=dict(causes), lost_threads=lost,
        )
