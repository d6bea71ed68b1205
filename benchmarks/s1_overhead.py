"""Section 1: orchestration overhead of accord against the same nodes in plain LangGraph."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections import Counter
from typing import Any

import psycopg

from accord.agents import ModelResolver
from accord.graphs.support import SupportDB, build_support
from benchmarks.env import BenchEnv
from benchmarks.handwritten import build_handwritten
from benchmarks.llm import scripted_model
from benchmarks.plots import grouped_bars
from benchmarks.profile import RequestProfiler, combined
from benchmarks.savers import (
    aaccord_saver,
    accord_saver,
    astock_saver,
    async_clock,
    sqlite_path,
    stock_saver,
    sync_clock,
)
from benchmarks.stats import Section, Spread, Table, fmt, fmt_spread
from benchmarks.workload import build_workload, flatten, labels_of

TARGET = 1.1
CONTENDERS = ("accord", "LangGraph")
MODES = ("invoke", "ainvoke")


def _savers(env: BenchEnv) -> list[str]:
    return ["none", "SQLite", *(["PostgreSQL"] if env.postgres else [])]


def _url(env: BenchEnv, saver: str, contender: str) -> str | None:
    """A fresh database per saver and contender (neither sees the other's rows)."""
    if saver == "none":
        return None
    tag = f"s1{contender[:2].lower()}"
    return env.sqlite_url(tag) if saver == "SQLite" else env.postgres_url(tag)


def _stored(url: str | None) -> tuple[int, int]:
    """Rows of checkpoints and of task writes in a contender's database."""
    if url is None:
        return 0, 0
    if url.startswith("sqlite:"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            return (conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0],
                    conn.execute("SELECT count(*) FROM writes").fetchone()[0])
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM checkpoints), "
                           "(SELECT count(*) FROM checkpoint_writes)").fetchone()
        return row[0], row[1]


def _message(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


class Contender:
    """One compiled graph, how to call it, and the clock on its saver."""

    def __init__(self, name: str, graph: Any, saver: Any, clock: Any) -> None:
        self.name = name
        self.graph = graph
        self.durable = saver is not None
        self.clock = clock
        # accord's engine picks durability="sync" itself; the baseline is told to.
        self.kwargs = {"durability": "sync"} if self.durable and name == "LangGraph" else {}

    def config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": uuid.uuid4().hex}} if self.durable else {}

    def run(self, texts: list[str]) -> dict[str, Any]:
        self.clock.take()
        start, cpu = time.perf_counter(), time.process_time()
        for text in texts:
            self.graph.invoke(_message(text), self.config(), **self.kwargs)
        return self._result(start, cpu, len(texts))

    async def arun(self, texts: list[str]) -> dict[str, Any]:
        self.clock.take()
        start, cpu = time.perf_counter(), time.process_time()
        for text in texts:
            await self.graph.ainvoke(_message(text), self.config(), **self.kwargs)
        return self._result(start, cpu, len(texts))

    def _result(self, start: float, cpu: float, n: int) -> dict[str, Any]:
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        in_saver, calls = self.clock.take()
        return {"ms": seconds / n * 1000, "cpu_ms": cpu_seconds / n * 1000,
                "saver_ms": in_saver / n * 1000, "calls": {k: v / n for k, v in calls.items()}}

    def steps(self, texts: list[str]) -> float:
        """Node executions per request: task-start events of ``stream_mode="tasks"``."""
        started = 0
        for text in texts:
            for chunk in self.graph.stream(_message(text), self.config(), stream_mode="tasks",
                                           **self.kwargs):
                started += "result" not in chunk
        return started / len(texts)


def _interleaved(repeats: int, contenders: dict[str, Contender], one: Any, progress: Any,
                 task: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for rep in range(repeats):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
        for name in order:
            out[name].append(one(contenders[name]))
            progress.advance(task)
    return out


def run(env: BenchEnv, progress: Any) -> Section:
    sizes = env.sizes
    convos = build_workload(sizes.overhead_requests, follow_ups=0, seed=3)
    texts = [r.text for r in flatten(convos)]
    labels = labels_of(convos)
    db = SupportDB(env.tmp / "support-overhead.db")
    workflows = {
        "accord": build_support(db=db, models=ModelResolver(models={"*": scripted_model(labels)}),
                                use_llm=True, refund_threshold=1e9),
        "LangGraph": build_handwritten(scripted_model(labels), db),
        "LangGraph async": build_handwritten(scripted_model(labels), db, asynchronous=True),
    }
    savers = _savers(env)
    task = progress.add_task("1 overhead", total=len(savers) * len(MODES) * sizes.repeats * 2)
    passes: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    steps: dict[tuple[str, str], float] = {}
    stored: dict[tuple[str, str], tuple[float, float]] = {}
    profiles: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for saver_name in savers:
        urls = {name: _url(env, saver_name, name) for name in CONTENDERS}
        # invoke: sync savers
        with accord_saver(urls["accord"]) as mine, stock_saver(urls["LangGraph"]) as stock:
            contenders = {
                "accord": Contender("accord", workflows["accord"].compile(checkpointer=mine),
                                    mine, sync_clock(mine, accord=True)),
                "LangGraph": Contender("LangGraph",
                                       workflows["LangGraph"].compile(checkpointer=stock),
                                       stock, sync_clock(stock, accord=False)),
            }
            for name, contender in contenders.items():
                contender.run(texts[:3])  # warm-up
                before = _stored(urls[name])
                steps[(saver_name, name)] = contender.steps(texts)
                after = _stored(urls[name])
                stored[(saver_name, name)] = ((after[0] - before[0]) / len(texts),
                                              (after[1] - before[1]) / len(texts))
            for name, results in _interleaved(sizes.repeats, contenders,
                                              lambda c: c.run(texts), progress, task).items():
                passes[(saver_name, "invoke", name)] = results

        # ainvoke: the async savers, opened on the loop that runs the graphs
        async def asynchronous(urls: dict[str, str | None] = urls,
                               saver_name: str = saver_name) -> dict[str, list[dict]]:
            async with aaccord_saver(urls["accord"]) as mine, \
                    astock_saver(urls["LangGraph"]) as stock:
                contenders = {
                    "accord": Contender("accord", workflows["accord"].compile(checkpointer=mine),
                                        mine, async_clock(mine)),
                    "LangGraph": Contender("LangGraph",
                                           workflows["LangGraph async"].compile(checkpointer=stock),
                                           stock, async_clock(stock)),
                }
                for contender in contenders.values():
                    await contender.arun(texts[:3])  # warm-up
                out: dict[str, list[dict]] = {name: [] for name in contenders}
                for rep in range(sizes.repeats):
                    order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
                    for name in order:
                        out[name].append(await contenders[name].arun(texts))
                        progress.advance(task)
                for name, contender in contenders.items():  # a profiled pass, untimed
                    profiler = RequestProfiler()
                    profiler.watch(mine if name == "accord" else None)
                    profiler.loop_profile.enable()
                    await contender.arun(texts)
                    profiler.loop_profile.disable()
                    profiles[(saver_name, name)] = profiler.by_owner(len(texts))
                return out

        for name, results in asyncio.run(asynchronous()).items():
            passes[(saver_name, "ainvoke", name)] = results
        for url in urls.values():
            if url and url.startswith("postgresql"):
                env.drop(url)

    def spread(key: tuple[str, str, str], field: str) -> Spread:
        return Spread.of(p[field] for p in passes[key])

    def paired(key: tuple[str, str], field: str) -> Spread:
        """accord / LangGraph of the passes run back to back (round by round)."""
        mine, base = passes[(*key, "accord")], passes[(*key, "LangGraph")]
        return Spread.of(a[field] / b[field] for a, b in zip(mine, base, strict=True))

    table = Table(
        f"Per request, zero model latency, {len(texts)} requests per pass; ratios are accord ÷ "
        "LangGraph of passes run back to back",
        ["saver", "call", "contender", "ms / request", "ratio", "CPU ms / request", "CPU ratio",
         "steps / request", "checkpoints / request", "writes / request", "ms in saver calls",
         "saver calls", "ms elsewhere"])
    ratios: dict[tuple[str, str], Spread] = {}
    for saver_name in savers:
        for mode in MODES:
            durable = saver_name != "none"
            ratios[(saver_name, mode)] = paired((saver_name, mode), "ms")
            for name in CONTENDERS:
                key = (saver_name, mode, name)
                ms, in_saver = spread(key, "ms"), spread(key, "saver_ms")
                elsewhere = Spread.of(p["ms"] - p["saver_ms"] for p in passes[key])
                calls = sum(passes[key][0]["calls"].values())
                mine = name == "accord"
                cps, wps = stored[(saver_name, name)]
                table.add(saver_name, mode, name, fmt_spread(ms),
                          fmt_spread(ratios[(saver_name, mode)]) + "×" if mine else "1",
                          fmt_spread(spread(key, "cpu_ms")),
                          fmt_spread(paired((saver_name, mode), "cpu_ms")) + "×" if mine else "1",
                          fmt(steps[(saver_name, name)], 1),
                          fmt(cps, 1) if durable else "–", fmt(wps, 1) if durable else "–",
                          fmt_spread(in_saver) if durable else "–",
                          fmt(calls, 1) if durable else "–", fmt_spread(elsewhere))
    calls_table = Table("Saver calls per request (first pass), by entry point",
                        ["saver", "call", "contender", "calls"])
    for saver_name in savers[1:]:
        for mode in MODES:
            for name in CONTENDERS:
                counted: Counter[str] = Counter(passes[(saver_name, mode, name)][0]["calls"])
                calls_table.add(saver_name, mode, name, ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(counted.items())))
    totals = {key: combined(p) for key, p in profiles.items()}

    def gap(saver_name: str, owner: str) -> float:
        return (totals[(saver_name, "accord")].get(owner, 0.0)
                - totals[(saver_name, "LangGraph")].get(owner, 0.0))

    def top(saver_name: str, n: int) -> list[str]:
        owners = set(totals[(saver_name, "accord")]) | set(totals[(saver_name, "LangGraph")])
        return sorted(owners, key=lambda o: -gap(saver_name, o))[:n]

    shown = sorted({o for s_ in savers for o in top(s_, 6)},
                   key=lambda o: -max(gap(s_, o) for s_ in savers))
    profile_table = Table(
        "Where an `ainvoke` request spends its CPU: cProfile own time (tottime; timer: the "
        "thread's CPU time) on the event loop's thread plus, for accord, in its saver threads, "
        "by owner, ms per request: accord / LangGraph (difference). A profiled pass of "
        f"{len(texts)} requests per contender and saver; cProfile slows every call alike.",
        ["owner", *savers])
    for owner_ in shown:
        profile_table.add(owner_, *(
            f"{totals[(s_, 'accord')].get(owner_, 0.0):.2f} / "
            f"{totals[(s_, 'LangGraph')].get(owner_, 0.0):.2f} ({gap(s_, owner_):+.2f})"
            for s_ in savers))
    profile_table.add("all", *(
        f"{sum(totals[(s_, 'accord')].values()):.2f} / {sum(totals[(s_, 'LangGraph')].values()):.2f}"
        f" ({sum(totals[(s_, 'accord')].values()) - sum(totals[(s_, 'LangGraph')].values()):+.2f})"
        for s_ in savers))
    profile_table.add("of which accord's saver threads", *(
        f"{sum(profiles[(s_, 'accord')]['saver threads'].values()):.2f} / –" for s_ in savers))
    groups = [f"{s}\n{m}" for s in savers for m in MODES]
    plot = grouped_bars(
        env.plots / "1_overhead.png", "Time per request, zero model latency (ms)", groups,
        {name: [spread((s, m, name), "ms") for s in savers for m in MODES] for name in CONTENDERS},
    )
    medians = {k: r.median for k, r in ratios.items()}
    worst_key = max(medians, key=lambda k: medians[k])
    worst = medians[worst_key]
    missed = {k: r for k, r in medians.items() if r > TARGET}
    lines = [f"**Target (accord ≤ {TARGET}× the hand-written LangGraph graph on every saver, "
             f"`invoke` and `ainvoke`): {'met' if not missed else 'missed'}** — worst "
             f"{worst:.2f}× ({worst_key[0]}, `{worst_key[1]}`); "
             + ", ".join(f"{s} `{m}` {r:.2f}×" for (s, m), r in medians.items()) + "."]
    for (saver_name, mode), r in sorted(missed.items(), key=lambda kv: -kv[1]):
        a, b = (saver_name, mode, "accord"), (saver_name, mode, "LangGraph")
        extra = spread(a, "ms").median - spread(b, "ms").median
        d_saver = spread(a, "saver_ms").median - spread(b, "saver_ms").median
        ca, cb = (sum(passes[k][0]["calls"].values()) for k in (a, b))
        lines.append(
            f"- {saver_name}, `{mode}` ({r:.2f}×): accord takes {extra:.2f} ms more per request; "
            + (f"{d_saver:+.2f} ms of it with a saver call in flight ({ca:.1f} calls, "
               f"{spread(a, 'saver_ms').median:.2f} ms, against {cb:.1f} calls, "
               f"{spread(b, 'saver_ms').median:.2f} ms for LangGraph's stock saver) and "
               f"{extra - d_saver:+.2f} ms elsewhere (nodes, engine, LangGraph's loop)"
               if saver_name != "none" else
               "no saver is involved, so all of it is in executing the graph")
            + f"; CPU {spread(a, 'cpu_ms').median:.2f} against {spread(b, 'cpu_ms').median:.2f} ms"
            + "; the largest extra CPU by owner (profile of the `ainvoke` pass): "
            + ", ".join(f"{o} {gap(saver_name, o):+.2f} ms" for o in top(saver_name, 3))
            + f"; {steps[(saver_name, 'accord')]:.1f} against "
              f"{steps[(saver_name, 'LangGraph')]:.1f} node executions per request.")
    verdict = "\n".join(lines)
    return Section(
        1, "Orchestration overhead",
        method=(
            "The support flow of `accord.graphs.support` (LLM agents, input guardrail, task "
            "records, audit trail, transition checks, hop budget, thread claim and fencing all "
            "on) against the same nodes written by hand in plain LangGraph "
            "(`benchmarks/handwritten.py`): keyword rules then the LLM tier, the same "
            "`create_agent` specialists with the same tools and prompts compiled with "
            "`checkpointer=False` (as accord's, so neither inner tool loop writes checkpoints), "
            "the human-triage node; plain functions for `invoke`, `async def` nodes for `ainvoke`. accord's engine runs LangGraph "
            "with `durability=\"sync\"`; the baseline is invoked with `durability=\"sync\"` too. "
            "Savers: accord's `open_saver` / `open_async_saver`; the baseline's LangGraph stock "
            "savers opened the standard way (`SqliteSaver` / `AsyncSqliteSaver` via "
            "`from_conn_string`, `PostgresSaver` / `AsyncPostgresSaver` over a psycopg pool with "
            "`autocommit=True, row_factory=dict_row, prepare_threshold=None`, max 20 "
            "connections, as accord's), each contender on a database of its own. Both use the "
            f"same scripted model with zero latency; {len(texts)} single-request threads across "
            f"the four domains per pass, {sizes.repeats} interleaved passes per contender, saver "
            "and call style after a warm-up; `invoke` is timed with the sync savers, `ainvoke` "
            "(one request at a time) with the async ones. A step is one node execution (a task "
            "start in `stream_mode=\"tasks\"`); checkpoints and writes per request are the rows "
            "the step-count pass added. *ms in saver calls* is the wall time during which at "
            "least one call into the saver was in flight (overlapping calls count once; "
            "`get_tuple`/`put`/`put_writes` for a stock sync saver, their "
            "`a…` forms for async; for accord, whose `invoke` also drives the async engine, "
            "`aget_tuple`/`aput`/`aput_writes`, `abegin_run`/`aend_run` (claim the thread; write "
            "the last step with the thread's status) and the tool-ledger calls); *ms elsewhere* "
            "is the rest of the request: the nodes, LangGraph's loop and accord's engine."
        ),
        tables=[table, calls_table, profile_table], verdict=verdict, plots=[plot],
        headline=(f"accord {worst:.2f}× hand-written LangGraph per request at worst "
                  f"({worst_key[0]}, {worst_key[1]}); target ≤ {TARGET}× "
                  f"{'met' if not missed else 'missed'}"),
    )
