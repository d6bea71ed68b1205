"""Section 3: throughput under concurrency on PostgreSQL, what a request costs, and which limit binds.

Two contenders on PostgreSQL, each on a scratch database of its own, measured in one run:
accord's support workflow on ``open_async_saver``, and the same nodes as a bare LangGraph graph
(``benchmarks/handwritten.py``) on ``AsyncPostgresSaver`` with the same durability
(``durability="sync"``).

1. A concurrency sweep (both contenders interleaved): completed requests per second, latency,
   process CPU per request, and the CPU PostgreSQL used meanwhile.
2. Accounting windows (fresh threads, then a follow-up on each of those threads): commits per
   request (``pg_stat_database``, see ``benchmarks/pg.py``), rows written, pool checkouts,
   accord's lock-session calls, CPU per request of this process and of PostgreSQL's backends.
3. Where the commits come from: one sequential pass per contender and kind with the client-side
   transaction log.
4. The physical limits: CPU (cores ÷ CPU seconds per request) and the database (``pgbench -N``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

from accord.agents import ModelResolver
from accord.graphs.support import SupportDB, build_support
from benchmarks.env import BenchEnv
from benchmarks.handwritten import build_handwritten
from benchmarks.llm import scripted_model
from benchmarks.pg import (
    Checkouts,
    ServerCpu,
    ThreadCpu,
    TransactionLog,
    pgbench,
    read_counters,
)
from benchmarks.plots import lines
from benchmarks.profile import RequestProfiler, combined
from benchmarks.savers import aaccord_saver, astock_saver
from benchmarks.stats import Section, Spread, Table, fmt, fmt_spread
from benchmarks.workload import build_workload, flatten, labels_of

LATENCY = 0.05
"""Seconds per model call."""
CPU_TARGET = 1.1
COMMIT_TARGET = 6
CONTENDERS = ("accord", "LangGraph")
KINDS = ("fresh thread", "follow-up")
PGBENCH_CLIENTS = 8
WARM = 3
"""Requests of each accounting window run before its clocks start."""
SATURATED = 0.8
"""A process using at least this many cores' worth of CPU counts as saturated (one Python
process runs Python code on one core at a time)."""


class Contender:
    """A compiled graph on its own scratch database, opened and closed per window."""

    def __init__(self, name: str, workflow: Any, url: str, model: Any) -> None:
        self.name = name
        self.workflow = workflow
        self.url = url
        self.model = model
        self.kwargs = {} if name == "accord" else {"durability": "sync"}
        self.graph: Any = None

    def saver(self) -> AbstractAsyncContextManager[Any]:
        return aaccord_saver(self.url) if self.name == "accord" else astock_saver(self.url)

    def compile(self, saver: Any) -> None:
        self.graph = self.workflow.compile(checkpointer=saver)

    async def request(self, text: str, thread_id: str) -> float:
        started = time.perf_counter()
        await self.graph.ainvoke({"messages": [{"role": "user", "content": text}]},
                                 {"configurable": {"thread_id": thread_id}}, **self.kwargs)
        return time.perf_counter() - started


def _follow_up(text: str) -> str:
    return f"Thanks. One more thing: {text[0].lower()}{text[1:]}"


async def _level(contender: Contender, texts: list[str], concurrency: int,
                 seconds: float) -> dict[str, Any]:
    """``concurrency`` workers loop until the deadline, a new thread per request."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            latencies.append(await contender.request(texts[i % len(texts)], uuid.uuid4().hex))
            i += concurrency

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = len(latencies)
    return {"rps": n / elapsed, "lat": latencies, "n": n, "cpu_ms": cpu / max(1, n) * 1000,
            "cores": cpu / elapsed, "elapsed": elapsed}


async def _batch(contender: Contender, jobs: list[tuple[str, str]], concurrency: int) -> None:
    """Run ``(text, thread_id)`` jobs with at most ``concurrency`` in flight."""
    queue = iter(jobs)

    async def worker() -> None:
        for text, thread_id in queue:
            await contender.request(text, thread_id)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _window(env: BenchEnv, contender: Contender, jobs: list[tuple[str, str]],
                  concurrency: int, checkouts: Checkouts) -> dict[str, Any]:
    """One accounting window: open the saver, run the jobs, close it, read the counters.

    The first ``WARM`` jobs run before the clocks start (a freshly compiled graph builds its
    agents on first use); the database counters count every job of the window.
    """
    admin = env.postgres
    before = await asyncio.to_thread(read_counters, admin, contender.url)
    server = ServerCpu(admin, [contender.url])
    await asyncio.to_thread(server.start)
    async with contender.saver() as saver:
        contender.compile(saver)
        await _batch(contender, jobs[:WARM], concurrency)
        calls0 = contender.model.calls
        checkouts.take()
        threads = ThreadCpu()
        threads.start()
        start, cpu = time.perf_counter(), time.process_time()
        await _batch(contender, jobs[WARM:], concurrency)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        by_thread = threads.stop()
        pool, lock_calls, lock_busy, lock_waiting = checkouts.take()
        calls = contender.model.calls - calls0
        backends, whole, machine = await asyncio.to_thread(server.stop)
    after = await asyncio.to_thread(read_counters, admin, contender.url)
    delta = after - before
    timed = len(jobs) - WARM
    n = len(jobs)
    return {
        "commits": delta.commits / n, "rows": delta.rows_written / n,
        "rollbacks": delta.xact_rollback / n, "sessions": delta.sessions,
        "checkouts": pool / timed, "lock_calls": lock_calls / timed,
        "lock_busy": lock_busy / elapsed, "lock_in_flight": lock_waiting / elapsed,
        "cpu_ms": cpu / timed * 1000, "cores": cpu / elapsed,
        "threads": {k: v / timed * 1000 for k, v in by_thread.items()},
        "pg_cpu_ms": backends / timed * 1000, "pg_cores": backends / elapsed,
        "server_cores": whole / elapsed, "machine_cores": machine / elapsed,
        "rps": timed / elapsed, "model_calls": calls / timed,
    }


async def _attribute(env: BenchEnv, contender: Contender, jobs: list[tuple[str, str]],
                     log: TransactionLog) -> tuple[dict[str, float], float]:
    """Commits per request by who asked (client side) and as the server counted them."""
    before = await asyncio.to_thread(read_counters, env.postgres, contender.url)
    async with contender.saver() as saver:
        contender.compile(saver)
        with log.installed():
            log.take()
            for text, thread_id in jobs:
                await contender.request(text, thread_id)
            counted = log.take()
    after = await asyncio.to_thread(read_counters, env.postgres, contender.url)
    n = len(jobs)
    return {k: v / n for k, v in counted.items()}, (after - before).commits / n


async def _profile(contender: Contender, jobs: list[tuple[str, str]],
                   concurrency: int) -> dict[str, dict[str, float]]:
    """CPU per request by owner (``benchmarks/profile.py``), at the accounting concurrency."""
    async with contender.saver() as saver:
        contender.compile(saver)
        await _batch(contender, jobs[:WARM], concurrency)
        profiler = RequestProfiler()
        profiler.watch(saver)
        profiler.loop_profile.enable()
        await _batch(contender, jobs[WARM:], concurrency)
        profiler.loop_profile.disable()
    return profiler.by_owner(len(jobs) - WARM)


async def _measure(env: BenchEnv, contenders: dict[str, Contender], texts: list[str],
                   progress: Any) -> dict[str, Any]:
    sizes = env.sizes
    levels = sizes.concurrency
    n_acc = sizes.accounting_requests
    task = progress.add_task("3 throughput", total=(
        len(levels) * sizes.throughput_repeats * 2 + sizes.throughput_repeats * 4 + 6))
    # set-up, once: schemas, warm code paths
    for contender in contenders.values():
        async with contender.saver() as saver:
            contender.compile(saver)
            await _level(contender, texts, 2, 0.3)

    # 1. the sweep
    sweep: dict[tuple[str, int], list[dict[str, Any]]] = {}
    async with contenders["accord"].saver() as mine, contenders["LangGraph"].saver() as stock:
        for contender, saver in zip(contenders.values(), (mine, stock), strict=True):
            contender.compile(saver)
            await _level(contender, texts, 2, 0.3)  # the graph builds its agents on first use
        for rep in range(sizes.throughput_repeats):
            for c in levels:
                order = CONTENDERS if rep % 2 == 0 else tuple(reversed(CONTENDERS))
                for name in order:
                    contender = contenders[name]
                    server = ServerCpu(env.postgres, [contender.url])
                    await asyncio.to_thread(server.start)
                    calls0 = contender.model.calls
                    result = await _level(contender, texts, c, sizes.throughput_seconds)
                    backends, whole, machine = await asyncio.to_thread(server.stop)
                    result.update(pg_cores=backends / result["elapsed"],
                                  server_cores=whole / result["elapsed"],
                                  machine_cores=machine / result["elapsed"],
                                  model_calls=(contender.model.calls - calls0) / max(1, result["n"]))
                    sweep.setdefault((name, c), []).append(result)
                    progress.advance(task)

    # 2. accounting windows: fresh threads, then a follow-up on each of them
    windows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    checkouts = Checkouts()
    with checkouts.installed():
        for rep in range(sizes.throughput_repeats):
            order = CONTENDERS if rep % 2 == 0 else tuple(reversed(CONTENDERS))
            for name in order:
                threads = [uuid.uuid4().hex for _ in range(n_acc)]
                fresh = [(texts[(rep * n_acc + i) % len(texts)], t) for i, t in enumerate(threads)]
                follow = [(_follow_up(text), t) for text, t in fresh]
                for kind, jobs in zip(KINDS, (fresh, follow), strict=True):
                    result = await _window(env, contenders[name], jobs,
                                           sizes.accounting_concurrency, checkouts)
                    windows.setdefault((name, kind), []).append(result)
                    progress.advance(task)

    # 3. where the commits come from (sequential, client-side log)
    log = TransactionLog()
    attribution: dict[tuple[str, str], tuple[dict[str, float], float]] = {}
    n_attr = max(4, n_acc // 6)
    for name in CONTENDERS:
        threads = [uuid.uuid4().hex for _ in range(n_attr)]
        fresh = [(texts[i % len(texts)], t) for i, t in enumerate(threads)]
        follow = [(_follow_up(text), t) for text, t in fresh]
        for kind, jobs in zip(KINDS, (fresh, follow), strict=True):
            attribution[(name, kind)] = await _attribute(env, contenders[name], jobs, log)
            progress.advance(task)

    # 4. where the CPU goes (fresh threads, profiled, untimed)
    profiles = {}
    for name in CONTENDERS:
        jobs = [(texts[i % len(texts)], uuid.uuid4().hex) for i in range(n_acc)]
        profiles[name] = await _profile(contenders[name], jobs, sizes.accounting_concurrency)
        progress.advance(task)
    return {"sweep": sweep, "windows": windows, "attribution": attribution, "profiles": profiles}


def run(env: BenchEnv, progress: Any) -> Section:
    sizes = env.sizes
    convos = build_workload(60, follow_ups=0, seed=9)
    texts = [r.text for r in flatten(convos) if r.keyword and r.label != "human_triage"]
    labels = labels_of(convos)
    models = {name: scripted_model(labels, latency=LATENCY) for name in CONTENDERS}
    db = SupportDB(env.tmp / "support-throughput.db")
    contenders = {
        "accord": Contender("accord", build_support(
            db=db, use_llm=True, models=ModelResolver(models={"*": models["accord"]}),
            refund_threshold=1e9), env.postgres_url("s3accord"), models["accord"]),
        "LangGraph": Contender("LangGraph", build_handwritten(models["LangGraph"], db,
                                                              asynchronous=True),
                               env.postgres_url("s3langgraph"), models["LangGraph"]),
    }
    measured = asyncio.run(_measure(env, contenders, texts, progress))
    bench_url = env.postgres_url("pgbench")
    bench = pgbench(bench_url, scale=sizes.pgbench_scale, clients=PGBENCH_CLIENTS,
                    seconds=sizes.pgbench_seconds)
    for contender in contenders.values():
        env.drop(contender.url)
    env.drop(bench_url)
    return _report(env, measured, bench)


def _report(env: BenchEnv, measured: dict[str, Any], bench: Any) -> Section:
    sizes = env.sizes
    sweep, windows, attribution = measured["sweep"], measured["windows"], measured["attribution"]
    levels = list(sizes.concurrency)

    def sw(name: str, c: int, key: str) -> Spread:
        return Spread.of(r[key] for r in sweep[(name, c)])

    def win(name: str, kind: str, key: str) -> Spread:
        return Spread.of(r[key] for r in windows[(name, kind)])

    calls_per_request = sw("accord", levels[0], "model_calls").median
    # --- sweep table
    sweep_table = Table(
        f"Concurrency sweep: completed requests per second and latency ({LATENCY * 1000:.0f} ms "
        f"per model call, {calls_per_request:.1f} calls per request), CPU meanwhile",
        ["concurrency", "contender", "requests / s", "ideal", "p50 ms", "p95 ms",
         "CPU ms / request", "this process (cores)", "PostgreSQL backends (cores)",
         "all postgres processes (cores)", f"machine (cores, of {env.cores})"])
    rps: dict[str, list[Spread]] = {name: [] for name in CONTENDERS}
    p95: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    ideal = []
    for c in levels:
        best = c / (calls_per_request * LATENCY)
        ideal.append(best)
        for name in CONTENDERS:
            spread = sw(name, c, "rps")
            lat = Spread.of([v for r in sweep[(name, c)] for v in r["lat"]])
            rps[name].append(spread)
            p95[name].append(lat.percentile(95) * 1000)
            sweep_table.add(str(c), name, fmt_spread(spread, 1), fmt(best, 1),
                            fmt(lat.percentile(50) * 1000, 0), fmt(p95[name][-1], 0),
                            fmt_spread(sw(name, c, "cpu_ms"), 1), fmt_spread(sw(name, c, "cores")),
                            fmt_spread(sw(name, c, "pg_cores")),
                            fmt_spread(sw(name, c, "server_cores")),
                            fmt_spread(sw(name, c, "machine_cores")))

    # --- accounting table
    acc_table = Table(
        f"Per completed request, {sizes.accounting_requests} requests per window at concurrency "
        f"{sizes.accounting_concurrency}, {sizes.throughput_repeats} windows per contender and "
        "kind (CPU ratio: accord ÷ LangGraph of windows run back to back)",
        ["kind", "contender", "commits", "rows written", "pool checkouts", "lock-session calls",
         "lock session in use (calls in flight)", "CPU ms (this process)", "CPU ratio", "this process (cores)", "PostgreSQL backends "
         "CPU ms", "PostgreSQL backends (cores)", "requests / s"])
    cpu_ratio: dict[str, Spread] = {}
    for kind in KINDS:
        mine, base = windows[("accord", kind)], windows[("LangGraph", kind)]
        cpu_ratio[kind] = Spread.of(a["cpu_ms"] / b["cpu_ms"] for a, b in zip(mine, base, strict=True))
        for name in CONTENDERS:
            accord = name == "accord"
            acc_table.add(kind, name, fmt_spread(win(name, kind, "commits"), 1),
                          fmt_spread(win(name, kind, "rows"), 1),
                          fmt_spread(win(name, kind, "checkouts"), 1),
                          fmt_spread(win(name, kind, "lock_calls"), 1) if accord else "–",
                          f"{win(name, kind, 'lock_busy').median:.0%} "
                          f"({win(name, kind, 'lock_in_flight').median:.2f})" if accord else "–",
                          fmt_spread(win(name, kind, "cpu_ms"), 1),
                          fmt_spread(cpu_ratio[kind]) + "×" if accord else "1",
                          fmt_spread(win(name, kind, "cores")),
                          fmt_spread(win(name, kind, "pg_cpu_ms"), 2),
                          fmt_spread(win(name, kind, "pg_cores")),
                          fmt_spread(win(name, kind, "rps"), 1))

    # --- CPU by thread
    def by_thread(name: str, kind: str, group: str) -> Spread:
        return Spread.of(r["threads"].get(group, 0.0) for r in windows[(name, kind)])

    groups = sorted((g for g in {g for rs in windows.values() for r in rs for g in r["threads"]}
                     if any(by_thread(n, k, g).median >= 0.05 for n, k in windows)),
                    key=lambda g: -by_thread("accord", KINDS[0], g).median)
    thread_table = Table(
        "This process's CPU ms per request by thread (accounting windows; `/proc/self/task`, "
        "10 ms ticks)", ["kind", "contender", *groups])
    for kind in KINDS:
        for name in CONTENDERS:
            thread_table.add(kind, name, *(fmt_spread(by_thread(name, kind, g), 1)
                                           for g in groups))

    # --- where the CPU goes
    profiles = measured["profiles"]
    totals = {name: combined(profiles[name]) for name in CONTENDERS}

    def cpu_gap(owner_: str) -> float:
        return totals["accord"].get(owner_, 0.0) - totals["LangGraph"].get(owner_, 0.0)

    owners = sorted(set(totals["accord"]) | set(totals["LangGraph"]), key=lambda o: -cpu_gap(o))
    shown = [o for o in owners[:8]] + [o for o in owners[-3:] if cpu_gap(o) < -0.05]
    profile_table = Table(
        f"Where a fresh-thread request's CPU goes, by owner (cProfile own time, timer: the "
        f"thread's CPU time; {sizes.accounting_requests - WARM} requests at concurrency "
        f"{sizes.accounting_concurrency}, profiled, untimed; cProfile slows every call alike): "
        "ms per request on the event loop's thread and in accord's saver threads",
        ["owner", "accord: loop", "accord: saver threads", "LangGraph: loop", "difference"])
    for owner_ in shown:
        profile_table.add(owner_, fmt(profiles["accord"]["loop"].get(owner_, 0.0)),
                          fmt(profiles["accord"]["saver threads"].get(owner_, 0.0)),
                          fmt(profiles["LangGraph"]["loop"].get(owner_, 0.0)),
                          f"{cpu_gap(owner_):+.2f}")
    profile_table.add("all", fmt(sum(profiles["accord"]["loop"].values())),
                      fmt(sum(profiles["accord"]["saver threads"].values())),
                      fmt(sum(profiles["LangGraph"]["loop"].values())),
                      f"{sum(totals['accord'].values()) - sum(totals['LangGraph'].values()):+.2f}")

    # --- where the commits come from
    attr_table = Table(
        "Where the commits come from: transactions per request by the saver method that asked "
        "(client-side log, one sequential pass per contender and kind), against the server's "
        "count in the same pass", ["kind", "contender", "server count", "client count",
                                   "by saver method (kind of transaction)"])
    for kind in KINDS:
        for name in CONTENDERS:
            counted, server = attribution[(name, kind)]
            parts = sorted(counted.items(), key=lambda kv: -kv[1])
            attr_table.add(kind, name, fmt(server, 2), fmt(sum(counted.values()), 2),
                           ", ".join(f"{k} {v:.2f}" for k, v in parts))

    # --- limits
    fresh_accord = windows[("accord", KINDS[0])]
    cpu_s = Spread.of(r["cpu_ms"] / 1000 for r in fresh_accord).median
    cpu_s_base = Spread.of(r["cpu_ms"] / 1000 for r in windows[("LangGraph", KINDS[0])]).median
    commits = win("accord", KINDS[0], "commits").median
    commits_base = win("LangGraph", KINDS[0], "commits").median
    cores = env.cores
    peak = {name: max(s.median for s in rps[name]) for name in CONTENDERS}
    peak_at = {name: levels[max(range(len(levels)), key=lambda i: rps[name][i].median)]
               for name in CONTENDERS}
    at_peak = {name: sweep[(name, peak_at[name])] for name in CONTENDERS}
    py_cores = Spread.of(r["cores"] for r in at_peak["accord"]).median
    pg_cores = Spread.of(r["pg_cores"] for r in at_peak["accord"]).median
    machine = Spread.of(r["machine_cores"] for r in at_peak["accord"]).median
    limits = Table("Physical limits, measured in this run (accord, fresh-thread requests)",
                   ["limit", "how it is computed", "requests / s"])
    cpu_all = cores / cpu_s
    cpu_one = 1 / cpu_s
    limits.add("CPU, all cores", f"{cores} cores ÷ {cpu_s * 1000:.1f} ms CPU per request",
               fmt(cpu_all, 0))
    limits.add("CPU, one Python process", f"1 core ÷ {cpu_s * 1000:.1f} ms CPU per request "
               "(one interpreter runs Python code on one core at a time)", fmt(cpu_one, 0))
    db_bound = None
    if bench.tps:
        db_bound = bench.tps / commits
        limits.add("database commits", f"pgbench -N, {bench.clients} clients: {bench.tps:,.0f} TPS "
                   f"÷ {commits:.1f} commits per request", fmt(db_bound, 0))
    if bench.latency_ms:
        limits.add("one client's commit latency", f"pgbench -N -c 1: {bench.latency_ms:.2f} ms per "
                   f"transaction ({bench.single_tps:,.0f} TPS); × {commits:.1f} commits = "
                   f"{bench.latency_ms * commits:.1f} ms of a request spent committing",
                   fmt(1000 / (bench.latency_ms * commits), 0) + " per thread")
    limits.add("measured peak, accord", f"concurrency {peak_at['accord']}: this process "
               f"{py_cores:.2f} cores, PostgreSQL backends {pg_cores:.2f} cores, machine "
               f"{machine:.2f} of {cores} cores busy",
               fmt(peak["accord"], 0))
    limits.add("measured peak, LangGraph", f"concurrency {peak_at['LangGraph']}",
               fmt(peak["LangGraph"], 0))

    # --- plots
    series = {f"{name} (median)": [s.median for s in rps[name]] for name in CONTENDERS}
    series["ideal c / latency bound"] = ideal
    series["CPU bound, one process"] = [cpu_one] * len(levels)
    if db_bound:
        series["database bound (pgbench)"] = [db_bound] * len(levels)
    plot1 = lines(env.plots / "3_throughput.png", "Throughput on PostgreSQL", levels, series,
                  xlabel="concurrent requests", ylabel="completed requests / s", logx=True,
                  logy=True, bands={f"{n} (median)": ([s.low for s in rps[n]],
                                                       [s.high for s in rps[n]])
                                    for n in CONTENDERS},
                  dashed=["ideal c / latency bound", "CPU bound, one process",
                          "database bound (pgbench)"])
    plot2 = lines(env.plots / "3_latency.png", "p95 request latency on PostgreSQL", levels,
                  {f"{n} p95": p95[n] for n in CONTENDERS}, xlabel="concurrent requests",
                  ylabel="ms", logx=True)

    # --- verdicts, from the numbers above
    verdict = []
    cpu_ok = all(cpu_ratio[k].median <= CPU_TARGET for k in KINDS)
    saturated = {k: win("accord", k, "cores").median for k in KINDS}
    verdict.append(
        f"**Target (accord's CPU per request ≤ {CPU_TARGET}× bare LangGraph's, same durability): "
        f"{'met' if cpu_ok else 'missed'}** — "
        + "; ".join(f"{k}: {win('accord', k, 'cpu_ms').median:.1f} ms against "
                    f"{win('LangGraph', k, 'cpu_ms').median:.1f} ms, "
                    f"{cpu_ratio[k].median:.2f}× (this process busy {saturated[k]:.2f} cores"
                    f"{'' if saturated[k] >= SATURATED else ', not saturated'})" for k in KINDS)
        + ".")
    if not cpu_ok:
        verdict.append(
            f"Measured with it: per fresh-thread request accord commits {commits:.1f} "
            f"transactions against {commits_base:.1f}, checks out "
            f"{win('accord', KINDS[0], 'checkouts').median:.1f} pooled connections against "
            f"{win('LangGraph', KINDS[0], 'checkouts').median:.1f} and makes "
            f"{win('accord', KINDS[0], 'lock_calls').median:.1f} calls on its lock session. "
            f"The CPU gap is {(cpu_s - cpu_s_base) * 1000:.1f} ms per fresh request; by thread: "
            + ", ".join(f"{g} {d:+.1f} ms" for g, d in _thread_gap(windows, KINDS[0]))
            + "; by owner (profile): " + ", ".join(
                f"{o} {cpu_gap(o):+.2f} ms" for o in owners[:5]) + ".")
    commit_ok = all(win("accord", k, "commits").median <= COMMIT_TARGET for k in KINDS)
    verdict.append(
        f"**Target (≤ {COMMIT_TARGET} commits per completed support request): "
        f"{'met' if commit_ok else 'missed'}** — accord "
        + ", ".join(f"{k} {win('accord', k, 'commits').median:.1f}" for k in KINDS)
        + "; bare LangGraph "
        + ", ".join(f"{k} {win('LangGraph', k, 'commits').median:.1f}" for k in KINDS)
        + " (the table above lists which saver method asked for each).")
    binding = _binding(peak["accord"], cpu_one, db_bound, py_cores, pg_cores, machine, cores)
    verdict.append(f"**Which limit binds:** {binding}")
    return Section(
        3, "Throughput under concurrency on PostgreSQL",
        method=(
            f"Two contenders, each on a scratch PostgreSQL database of its own, measured in the "
            f"same run: accord's support workflow (LLM agents) through `graph.ainvoke` on "
            f"`open_async_saver` (accord's pool, max 20 connections, plus its lock session), and "
            f"the same nodes as a bare LangGraph graph (`benchmarks/handwritten.py`) on "
            f"`AsyncPostgresSaver` over an `AsyncConnectionPool` (max 20, `autocommit=True, "
            f"row_factory=dict_row, prepare_threshold=None`) invoked with `durability=\"sync\"`, "
            f"the durability accord's engine uses. Requests carry a routing keyword (rule tier), "
            f"then the specialist makes its 2 model calls of {LATENCY * 1000:.0f} ms. "
            f"**Sweep:** for each concurrency level that many asyncio workers loop for "
            f"{sizes.throughput_seconds:.0f} s, a new thread per request, "
            f"{sizes.throughput_repeats} rounds, contenders interleaved; ideal = concurrency ÷ "
            f"({calls_per_request:.1f} calls × {LATENCY * 1000:.0f} ms). CPU ms per request is "
            f"this process's CPU time (`time.process_time()`, every thread) over the level "
            f"divided by the requests completed; *cores* are CPU seconds per wall second. "
            f"PostgreSQL's CPU is read from `/proc/<pid>/stat` (utime + stime) before and after: "
            f"*backends* are the server processes connected to the contender's database (pids "
            f"from `pg_stat_activity`; one that connected in between counts whole), *all postgres "
            f"processes* adds the WAL writer, checkpointer, background writer and other tenants' "
            f"backends (this machine is shared). **Accounting windows:** "
            f"{sizes.accounting_requests} requests at concurrency "
            f"{sizes.accounting_concurrency} on fresh threads, then one follow-up on each of "
            f"those threads; each window opens the contender's saver, runs, and closes it; its "
            f"first {WARM} requests run before the clocks start (a freshly compiled graph builds "
            f"its agents on first use), the database counters count them all. "
            f"Commits are `pg_stat_database.xact_commit` deltas of the contender's database, "
            f"read from a connection to another database after every backend of the window has "
            f"exited (PostgreSQL 15 publishes a backend's counters when it has been idle 1 s "
            f"after its last flush, after `pg_stat_force_next_flush()` at its next transaction "
            f"end, or at exit; closing the pools makes every backend exit, and its exit flush "
            f"runs before it leaves `pg_stat_activity`), minus the one transaction each new "
            f"connection commits while it starts (Δ`sessions`). They count every transaction, "
            f"read-only ones too; a psycopg pipeline up to its sync is one. Rows written are "
            f"Δ(`tup_inserted` + `tup_updated` + `tup_deleted`). Pool checkouts count calls of "
            f"`ConnectionPool.getconn` / `AsyncConnectionPool.getconn` (`connection()` goes "
            f"through it), wrapped in this process; lock-session calls count "
            f"`accord.checkpoints.locks.LockSession.run`. **Limits:** pgbench (`-i -s "
            f"{sizes.pgbench_scale}`, then `-N` — no branch and teller updates, one commit per "
            f"transaction — with {PGBENCH_CLIENTS} clients and with one, "
            f"{sizes.pgbench_seconds} s each) on a scratch database after the runs."
        ),
        tables=[sweep_table, acc_table, thread_table, profile_table, attr_table, limits], plots=[plot1, plot2],
        verdict="\n\n".join(verdict),
        headline=(f"peak {peak['accord']:.0f} requests/s (bare LangGraph {peak['LangGraph']:.0f}); "
                  f"CPU per request {cpu_ratio[KINDS[0]].median:.2f}× bare LangGraph (target "
                  f"≤ {CPU_TARGET}× {'met' if cpu_ok else 'missed'}); "
                  f"{win('accord', KINDS[0], 'commits').median:.1f} commits per fresh request, "
                  f"{win('accord', KINDS[1], 'commits').median:.1f} per follow-up (target ≤ "
                  f"{COMMIT_TARGET} {'met' if commit_ok else 'missed'})"),
    )


def _thread_gap(windows: dict[tuple[str, str], list[dict[str, Any]]],
                kind: str) -> list[tuple[str, float]]:
    """accord's CPU per request minus LangGraph's, by thread group, largest first."""
    def median(name: str, group: str) -> float:
        return Spread.of(r["threads"].get(group, 0.0) for r in windows[(name, kind)]).median

    groups = {g for name in CONTENDERS for r in windows[(name, kind)] for g in r["threads"]}
    gaps = [(g, median("accord", g) - median("LangGraph", g)) for g in groups]
    return sorted((gap for gap in gaps if abs(gap[1]) >= 0.05), key=lambda gap: -abs(gap[1]))


def _binding(peak: float, cpu_one: float, db_bound: float | None, py_cores: float,
             pg_cores: float, machine: float, cores: int) -> str:
    """Which limit the measurements point at (the nearest bound, with the CPU readings)."""
    parts = [f"at its peak ({peak:.0f} requests/s) accord reaches {peak / cpu_one:.0%} of the "
             f"one-process CPU bound ({cpu_one:.0f}/s)"]
    if db_bound:
        parts.append(f"{peak / db_bound:.0%} of the database-commit bound ({db_bound:.0f}/s)")
    parts.append(f"while this process used {py_cores:.2f} cores, PostgreSQL's backends for its "
                 f"database {pg_cores:.2f} cores and the whole machine {machine:.2f} of {cores}")
    text = ", ".join(parts) + ". "
    if db_bound is None or cpu_one <= db_bound:
        if py_cores >= SATURATED:
            text += ("The Python process's CPU binds: the CPU bound is the lower one, the peak "
                     "approaches it, and the process is the busy side while PostgreSQL is "
                     "mostly idle")
            if machine >= SATURATED * cores:
                text += (f". The machine was {machine / cores:.0%} busy meanwhile (this process, "
                         f"PostgreSQL and the other jobs sharing it), so the process got "
                         f"{py_cores:.2f} of the one core it could use; alone on the machine the "
                         f"same CPU per request would allow up to {cpu_one:.0f} requests/s")
        elif machine >= SATURATED * cores:
            text += (f"The machine's CPU binds: it was {machine / cores:.0%} busy, this process "
                     f"getting {py_cores:.2f} cores of it (PostgreSQL {pg_cores:.2f}, the rest "
                     f"other processes on this shared machine); the CPU bound is the lower one")
        else:
            text += (f"Neither bound is reached: this process used {py_cores:.2f} cores and "
                     f"the machine was {machine / cores:.0%} busy at the peak")
    else:
        text += ("The database's commit rate binds: it is the lower bound" +
                 ("" if pg_cores > py_cores else ", although PostgreSQL's backends used less "
                  "CPU than this process (commit latency, not CPU, is what it spends)"))
    return text + "."
