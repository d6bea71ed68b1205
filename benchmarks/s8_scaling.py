"""Section 8: scaling out with ``accord worker`` processes, against the CPU bound.

Real processes on one PostgreSQL, each configuration on a fresh scratch database:

- *in-process*: one ``accord serve`` that runs every graph itself (the embedded default);
- *N workers*: ``accord serve --workers-queue`` (it only queues) and N ``accord worker``
  processes, 256 ÷ N job slots each.

A closed-loop client in this process keeps ``concurrency`` requests in flight through the runs
API (``POST /api/runs`` of the graph ``scale``, which the processes' ``langgraph.json``
declares), and sees each finish in the thread index (one query every 20 ms, the
same for every configuration, so the client asks the system under test nothing but the
submissions). Each model call takes 50 ms (``benchmarks/scale/graph.py``).

Per window: completed requests per second, latency from submit to done, and the CPU every
process used, read from ``/proc``: the server, the workers, PostgreSQL's backends of the
scratch database (the client's own connection counted as the client's), the client, the
machine. *CPU ms per request* is what the system under test
(server, workers, PostgreSQL) spent per completed request, and the **CPU bound** is
cores ÷ that: the rate at which the system would saturate every core of the machine, the load
client aside.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benchmarks.env import BenchEnv
from benchmarks.pg import TICKS, ServerCpu, _machine_busy, _ticks
from benchmarks.plots import lines
from benchmarks.stats import Section, Spread, Table, fmt, fmt_spread

HERE = Path(__file__).resolve().parent
GRAPH = "scale"
"""The graph's id in the ``langgraph.json`` each configuration's processes run from."""
ACCORD = str(Path(sys.executable).with_name("accord"))
POLL = 0.02
"""Seconds between two reads of the thread index."""
TWO_WORKERS_TARGET = 1.7
BOUND_TARGET = 0.7
IN_PROCESS = "in-process serve"
FINISHED = ("done", "failed")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _texts() -> list[str]:
    from benchmarks.scale.graph import texts

    return texts()


@dataclass
class Fleet:
    """The processes of one configuration."""

    url: str
    workers: int
    """0: in-process."""
    concurrency: int
    tmp: Path
    graphs: dict[str, str] = field(default_factory=dict)
    """Graph id -> ``file.py:attr``, written to the processes' ``langgraph.json``."""
    base: str = ""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ACCORD_"))}
        env.update(ACCORD_SUPPORT_DB=str(self.tmp / "support.db"), ACCORD_LOG_LEVEL="WARNING",
                   ACCORD_RUNS_CONCURRENCY=str(self.concurrency), ACCORD_DB_POOL_SIZE="4",
                   PYTHONPATH="")
        return env

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.tmp / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            [ACCORD, *args], cwd=self.tmp, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def start(self) -> None:
        from accord.workers.app import apply_schema

        if self.graphs:
            (self.tmp / "langgraph.json").write_text(json.dumps(
                {"dependencies": ["."], "graphs": self.graphs}))
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        serve = ["serve", "--db", self.url, "--port", str(port)]
        if self.workers:
            apply_schema(self.url)
            serve.append("--workers-queue")
        self._start("serve", serve)
        slots = max(1, self.concurrency // max(1, self.workers))
        for n in range(self.workers):
            self._start(f"worker-{n}", ["worker", "--db", self.url, "--concurrency", str(slots)])
        deadline = time.monotonic() + 120
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited: {(self.tmp / f'{name}.log').read_text()}")
            try:
                if httpx.get(f"{self.base}/metrics", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("accord serve did not answer within 120 s")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def ticks(self) -> dict[str, int]:
        """CPU ticks so far: the server's, the workers' (summed)."""
        out = {"server": 0, "workers": 0}
        for name, process in self.processes.items():
            out["server" if name == "serve" else "workers"] += _ticks(process.pid) or 0
        return out


def scratch(env: BenchEnv, name: str) -> Path:
    """A folder of its own for one configuration's processes."""
    tmp = env.tmp / name
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


@contextmanager
def fleet_of(env: BenchEnv, name: str, workers: int, concurrency: int,
             graphs: dict[str, str] | None = None) -> Iterator[Fleet]:
    """The processes of one configuration on a fresh scratch database, stopped at the end."""
    url = env.postgres_url(name)
    fleet = Fleet(url, workers, concurrency, scratch(env, name), graphs or {})
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
        env.drop(url)


class Client:
    """Keeps ``concurrency`` requests in flight through the runs API; sees them finish in the
    thread index."""

    def __init__(self, fleet: Fleet, texts: list[str], concurrency: int) -> None:
        self.fleet = fleet
        self.texts = texts
        self.concurrency = concurrency
        self.outstanding: dict[str, float] = {}
        self.finished: list[tuple[float, float, str]] = []
        """(finished at, latency, status) in the order seen."""
        self.errors: list[str] = []
        self.backend: int | None = None
        """PostgreSQL's pid of the client's connection (its CPU is the client's, not the
        system's)."""
        self._sent = 0

    async def _submit(self, http: httpx.AsyncClient) -> None:
        text = self.texts[self._sent % len(self.texts)]
        self._sent += 1
        started = time.perf_counter()
        reply = await http.post("/api/runs", json={"graph": GRAPH, "input": text})
        if reply.status_code != 202:
            self.errors.append(f"{reply.status_code} {reply.text[:200]}")
            return
        self.outstanding[reply.json()["thread_id"]] = started

    async def run(self, seconds: float) -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with (httpx.AsyncClient(base_url=self.fleet.base, timeout=120,
                                      limits=limits) as http,
                    await psycopg.AsyncConnection.connect(self.fleet.url,
                                                          autocommit=True) as conn):
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
            self.backend = row[0] if row else None
            deadline = time.perf_counter() + seconds
            in_flight: set[asyncio.Task[None]] = set()
            while time.perf_counter() < deadline:
                wanted = self.concurrency - len(self.outstanding) - len(in_flight)
                for _ in range(max(0, wanted)):
                    task = asyncio.create_task(self._submit(http))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                await asyncio.sleep(POLL)
                if self.outstanding:
                    rows = await (await conn.execute(
                        "SELECT thread_id, status FROM accord_threads "
                        "WHERE thread_id = ANY(%s) AND status = ANY(%s)",
                        (list(self.outstanding), list(FINISHED)))).fetchall()
                    now = time.perf_counter()
                    for thread_id, status in rows:
                        started = self.outstanding.pop(thread_id)
                        self.finished.append((now, now - started, status))
                if len(self.errors) > 20:
                    raise RuntimeError(f"the runs API refused submissions: {self.errors[:3]}")
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)


async def _measure(env: BenchEnv, fleet: Fleet, texts: list[str], concurrency: int,
                   warm: float, seconds: float) -> dict[str, Any]:
    client = Client(fleet, texts, concurrency)
    server = ServerCpu(env.postgres, [fleet.url])
    measured: dict[str, Any] = {}

    async def window() -> None:
        await asyncio.sleep(warm)
        await asyncio.to_thread(server.start)
        before = fleet.ticks()
        me, machine = _ticks(os.getpid()) or 0, _machine_busy()
        polled = _ticks(client.backend) or 0 if client.backend else 0
        count0, t0 = len(client.finished), time.perf_counter()
        await asyncio.sleep(seconds)
        t1 = time.perf_counter()
        after = fleet.ticks()
        polled = ((_ticks(client.backend) or 0) - polled if client.backend else 0) / TICKS
        measured.update(
            elapsed=t1 - t0, done=[f for f in client.finished[count0:] if f[0] <= t1],
            client=((_ticks(os.getpid()) or 0) - me) / TICKS + polled,
            machine=(_machine_busy() - machine) / TICKS,
            **{k: (after[k] - before[k]) / TICKS for k in after})
        backends, _whole, _machine = await asyncio.to_thread(server.stop)
        measured["postgres"] = backends - polled

    await asyncio.gather(client.run(warm + seconds + 0.5), window())
    done = measured["done"]
    n = len(done)
    elapsed = measured["elapsed"]
    sut = measured["server"] + measured["workers"] + measured["postgres"]
    return {
        "rps": n / elapsed, "n": n, "lat": [f[1] for f in done],
        "failed": sum(1 for f in done if f[2] != "done"),
        "cpu_ms": 1000 * sut / max(1, n),
        "server_ms": 1000 * measured["server"] / max(1, n),
        "workers_ms": 1000 * measured["workers"] / max(1, n),
        "postgres_ms": 1000 * measured["postgres"] / max(1, n),
        "client_ms": 1000 * measured["client"] / max(1, n),
        "sut_cores": sut / elapsed, "machine_cores": measured["machine"] / elapsed,
        "refused": len(client.errors),
    }


def _configs(env: BenchEnv) -> list[tuple[str, int]]:
    return [(IN_PROCESS, 0)] + [(f"{n} worker{'s' if n > 1 else ''}", n)
                                for n in env.sizes.scale_workers]


def run(env: BenchEnv, progress: Any) -> Section:
    sizes = env.sizes
    texts = _texts()
    configs = _configs(env)
    task = progress.add_task("8. scaling out", total=len(configs) * sizes.scale_repeats)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in configs}
    for rep in range(sizes.scale_repeats):
        order = configs if rep % 2 == 0 else list(reversed(configs))
        for name, workers in order:
            with fleet_of(env, f"s8_{workers}w_{rep}", workers, sizes.scale_concurrency,
                          {GRAPH: f"{HERE / 'scale' / 'graph.py'}:build"}) as fleet:
                results[name].append(asyncio.run(_measure(
                    env, fleet, texts, sizes.scale_concurrency, sizes.scale_warm,
                    sizes.scale_seconds)))
            progress.advance(task)
    return _report(env, configs, results)


def _report(env: BenchEnv, configs: list[tuple[str, int]],
            results: dict[str, list[dict[str, Any]]]) -> Section:
    sizes = env.sizes
    cores = env.cores

    def spread(name: str, key: str) -> Spread:
        return Spread.of(r[key] for r in results[name])

    def bound(r: dict[str, Any]) -> float:
        return cores / (r["cpu_ms"] / 1000)

    table = Table(
        f"Completed requests per second at concurrency {sizes.scale_concurrency} "
        f"({sizes.scale_seconds:.0f} s windows after {sizes.scale_warm:.0f} s of warm-up, "
        f"{sizes.scale_repeats} windows per configuration, configurations interleaved), against "
        f"the CPU bound ({cores} cores ÷ CPU ms per request of server, workers and PostgreSQL)",
        ["configuration", "requests / s", "vs 1 worker", "vs in-process", "CPU bound (req/s)",
         "of the bound", "p50 ms", "p95 ms", "p99 ms", "CPU ms / request", "server ms",
         "workers ms", "PostgreSQL ms", "client ms", "system (cores)",
         f"machine (cores, of {cores})", "failed"])
    one = next((name for name, w in configs if w == 1), None)
    ratio_of: dict[str, Spread] = {}
    of_bound: dict[str, Spread] = {}
    p95: dict[str, float] = {}
    for name, _workers in configs:
        rows = results[name]
        lat = Spread.of([v for r in rows for v in r["lat"]])
        p95[name] = lat.percentile(95) * 1000
        of_bound[name] = Spread.of(r["rps"] / bound(r) for r in rows)
        vs_one = (Spread.of(a["rps"] / b["rps"] for a, b in zip(rows, results[one], strict=True))
                  if one else None)
        if vs_one is not None:
            ratio_of[name] = vs_one
        vs_in = Spread.of(a["rps"] / b["rps"]
                          for a, b in zip(rows, results[IN_PROCESS], strict=True))
        table.add(name, fmt_spread(spread(name, "rps"), 1),
                  fmt_spread(vs_one) + "×" if vs_one else "–", fmt_spread(vs_in) + "×",
                  fmt_spread(Spread.of(bound(r) for r in rows), 1),
                  f"{of_bound[name].median:.0%}", fmt(lat.percentile(50) * 1000, 0),
                  fmt(p95[name], 0), fmt(lat.percentile(99) * 1000, 0),
                  fmt_spread(spread(name, "cpu_ms"), 1), fmt_spread(spread(name, "server_ms"), 1),
                  fmt_spread(spread(name, "workers_ms"), 1),
                  fmt_spread(spread(name, "postgres_ms"), 1),
                  fmt_spread(spread(name, "client_ms"), 1),
                  fmt_spread(spread(name, "sut_cores")),
                  fmt_spread(spread(name, "machine_cores")),
                  str(sum(r["failed"] + r["refused"] for r in rows)))

    worker_configs = [(name, w) for name, w in configs if w]
    xs = [w for _, w in worker_configs]
    plot = lines(env.plots / "8_scaling.png",
                 f"Scaling out at concurrency {sizes.scale_concurrency} (50 ms per model call)",
                 xs, {"workers": [spread(n, "rps").median for n, _ in worker_configs],
                      "CPU bound": [Spread.of(bound(r) for r in results[n]).median
                                    for n, _ in worker_configs],
                      IN_PROCESS: [spread(IN_PROCESS, "rps").median] * len(xs)},
                 xlabel="worker processes", ylabel="completed requests / s", logx=True,
                 bands={"workers": ([spread(n, "rps").low for n, _ in worker_configs],
                                    [spread(n, "rps").high for n, _ in worker_configs])},
                 dashed=("CPU bound", IN_PROCESS))

    verdict = []
    two = next((name for name, w in configs if w == 2), None)
    if two and one:
        met = ratio_of[two].median >= TWO_WORKERS_TARGET
        verdict.append(
            f"**Target (2 workers ≥ {TWO_WORKERS_TARGET}× one worker): "
            f"{'met' if met else 'missed'}**: 2 workers ÷ 1 worker {fmt_spread(ratio_of[two])}×.")
    best = max(configs, key=lambda c: spread(c[0], "rps").median)[0]
    met = of_bound[best].median >= BOUND_TARGET
    verdict.append(
        f"**Target (the best configuration ≥ {BOUND_TARGET:.0%} of the CPU bound): "
        f"{'met' if met else 'missed'}**: {best}, {spread(best, 'rps').median:.1f} requests/s, "
        f"{of_bound[best].median:.0%} of its CPU bound; p95 {p95[best]:.0f} ms.")
    verdict.append(_why(env, configs, results, one, sizes.scale_concurrency,
                        ratio_of[two].median if two and one else None))
    return Section(
        8, "Scaling out: worker processes on one PostgreSQL",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
        tables=[table], plots=[plot], verdict="\n\n".join(v for v in verdict if v),
        headline=(f"{best}: {spread(best, 'rps').median:.0f} requests/s, "
                  f"{of_bound[best].median:.0%} of the CPU bound"
                  + (f"; 2 workers {ratio_of[two].median:.2f}× one" if two and one else "")),
    )


def _why(env: BenchEnv, configs: list[tuple[str, int]],
         results: dict[str, list[dict[str, Any]]], one: str | None, concurrency: int,
         ratio: float | None) -> str:
    """What bounds the configurations, from the CPU figures measured above."""
    if one is None:
        return ""
    cores = env.cores
    rows = results[one]

    def med(values: Any) -> float:
        return Spread.of(values).median

    worker_ms = med(r["workers_ms"] for r in rows)
    other_ms = {k: med(r[f"{k}_ms"] for r in rows) for k in ("server", "postgres", "client")}
    elsewhere = sum(other_ms.values())
    worker_cores = med(r["workers_ms"] * r["rps"] / 1000 for r in rows)
    machine = med(r["machine_cores"] for r in rows)
    rps_one = med(r["rps"] for r in rows)
    bound = ("its own CPU: one Python process runs Python on one core at a time"
             if worker_cores >= 0.85 else "less than a core of its own CPU")
    parts = [
        f"**Why.** With one worker the worker process used {worker_cores:.2f} cores and the "
        f"machine {machine:.2f} of {cores}: the worker was bound by {bound}. A request cost "
        f"{worker_ms:.1f} ms of CPU in the worker and {elsewhere:.1f} ms elsewhere (server "
        f"{other_ms['server']:.1f}, PostgreSQL {other_ms['postgres']:.1f}, the load client "
        f"{other_ms['client']:.1f})."]
    ceiling = min(2 * 1000 / worker_ms, cores * 1000 / (worker_ms + elsewhere))
    parts.append(
        f"At those costs per request, two workers on {cores} cores could complete at most "
        f"min(2 × 1000 ÷ {worker_ms:.1f}, {cores} × 1000 ÷ {worker_ms + elsewhere:.1f}) = "
        f"{ceiling:.1f} requests/s, {ceiling / rps_one:.2f}× what one worker did.")
    two = next((n for n, w in configs if w == 2), None)
    if two and ratio is not None:
        two_rows = results[two]
        two_worker_ms = med(r["workers_ms"] for r in two_rows)
        two_elsewhere = sum(med(r[f"{k}_ms"] for r in two_rows)
                            for k in ("server", "postgres", "client"))
        change = 1 - two_worker_ms / worker_ms
        parts.append(
            f"Measured with two workers ({concurrency // 2} job slots each): {two_worker_ms:.1f} ms of "
            f"CPU per request in the workers ({abs(change):.0%} {'less' if change >= 0 else 'more'}"
            f" than one worker holding all {concurrency}) and {two_elsewhere:.1f} ms elsewhere, "
            f"{ratio:.2f}× one worker's requests/s (the median of the windows' ratios).")
        if ratio < TWO_WORKERS_TARGET:
            parts.append(
                f"{TWO_WORKERS_TARGET}× needs the CPU a request costs outside the workers under "
                f"{(2 / TWO_WORKERS_TARGET - 1) * two_worker_ms:.1f} ms, or more cores.")
    many = [(n, w) for n, w in configs if w > 1]
    if many:
        name = many[-1][0]
        machine = med(r["machine_cores"] for r in results[name])
        parts.append(f"With {name} the machine was at {machine:.2f} of {cores} cores.")
    return " ".join(parts)
