"""Section 1: orchestration overhead of accord against the same nodes in plain LangGraph."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from accord.agents import ModelResolver
from accord.checkpoints import open_saver
from accord.graphs.support import SupportDB, build_support
from benchmarks.env import BenchEnv
from benchmarks.handwritten import build_handwritten
from benchmarks.llm import scripted_model
from benchmarks.plots import grouped_bars
from benchmarks.stats import Section, Spread, Table, fmt, fmt_spread, ratio
from benchmarks.workload import build_workload, flatten, labels_of

TARGET = 1.2


def _savers(env: BenchEnv) -> list[tuple[str, str | None]]:
    savers: list[tuple[str, str | None]] = [("none", None), ("SQLite", env.sqlite_url("overhead"))]
    if env.postgres:
        savers.append(("PostgreSQL", env.postgres_url("overhead")))
    return savers


def _pass(graph: Any, texts: list[str], durable: bool) -> float:
    start = time.perf_counter()
    for text in texts:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}} if durable else {}
        graph.invoke({"messages": [{"role": "user", "content": text}]}, config)
    return (time.perf_counter() - start) / len(texts)


def _steps(graph: Any, texts: list[str], durable: bool) -> float:
    steps = 0
    for text in texts:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}} if durable else {}
        steps += sum(1 for _ in graph.stream({"messages": [{"role": "user", "content": text}]},
                                             config, stream_mode="updates"))
    return steps / len(texts)


def run(env: BenchEnv, progress: Any) -> Section:
    sizes = env.sizes
    convos = build_workload(sizes.overhead_requests, follow_ups=0, seed=3)
    texts = [r.text for r in flatten(convos)]
    labels = labels_of(convos)
    db = SupportDB(env.tmp / "support-overhead.db")
    contenders = {
        "accord": build_support(db=db, models=ModelResolver(models={"*": scripted_model(labels)}),
                                use_llm=True, refund_threshold=1e9),
        "hand-written": build_handwritten(scripted_model(labels), db),
    }
    savers = _savers(env)
    task = progress.add_task("1 overhead", total=len(savers) * sizes.repeats * 2)
    results: dict[tuple[str, str], Spread] = {}
    steps: dict[tuple[str, str], float] = {}
    for saver_name, url in savers:
        with open_saver(url) if url else contextlib.nullcontext(None) as saver:
            graphs = {name: w.compile(checkpointer=saver) for name, w in contenders.items()}
            durable = saver is not None
            for name, graph in graphs.items():  # warm-up, and the step count
                _pass(graph, texts[:3], durable)
                steps[(saver_name, name)] = _steps(graph, texts, durable)
            times: dict[str, list[float]] = {name: [] for name in graphs}
            for rep in range(sizes.repeats):
                order = list(graphs) if rep % 2 == 0 else list(reversed(graphs))  # interleaved
                for name in order:
                    times[name].append(_pass(graphs[name], texts, durable))
                    progress.advance(task)
            for name, values in times.items():
                results[(saver_name, name)] = Spread.of(values).scaled(1000)

    table = Table("Time per request and per step (ms), zero model latency",
                  ["saver", "contender", "ms / request", "steps / request", "ms / step",
                   "ratio (request)", "ratio (step)"])
    worst = 0.0
    worst_step = 0.0
    for saver_name, _ in savers:
        base = results[(saver_name, "hand-written")]
        base_steps = steps[(saver_name, "hand-written")]
        for name in contenders:
            spread = results[(saver_name, name)]
            per_step = spread.scaled(1 / steps[(saver_name, name)])
            r = ratio(spread.median, base.median)
            rs = ratio(per_step.median, base.median / base_steps)
            if name == "accord":
                worst, worst_step = max(worst, r), max(worst_step, rs)
            table.add(saver_name, name, fmt_spread(spread), fmt(steps[(saver_name, name)], 1),
                      fmt_spread(per_step), f"{r:.2f}×", f"{rs:.2f}×")
    plot = grouped_bars(
        env.plots / "1_overhead.png", "Time per request, zero model latency (ms)",
        [s for s, _ in savers], {name: [results[(s, name)] for s, _ in savers] for name in contenders},
    )
    met = worst <= TARGET
    verdict = (
        f"**Target (accord within {TARGET}× of hand-written): "
        f"{'met' if met else 'missed'}** — worst ratio per request {worst:.2f}×, "
        f"per step {worst_step:.2f}×."
    )
    if not met:
        verdict += (
            " Where it is missed, the cause is the extra step: accord's router runs twice per "
            "request (it routes the request, then closes the finished task with no model call), "
            "so a request takes about 2.8 node steps against 2.0, and every step carries accord's "
            "larger state (task records, per-agent outputs, versioned context, audit trail) and "
            "its transition checks. The per-step ratio separates the two."
        )
    verdict += (
        " With a saver accord can come out ahead: an accord LLM agent's inner `create_agent` "
        "loop runs without a checkpointer of its own (the workflow node is the unit of "
        "durability, and the tool ledger replays a re-run step's tool results), whereas the "
        "hand-written specialists, compiled the LangGraph default way, inherit the checkpointer "
        "and write a checkpoint at every step of their tool loop."
    )
    return Section(
        1, "Orchestration overhead",
        method=(
            f"The support flow of `accord.graphs.support` (LLM agents, input guardrail, task "
            f"records, audit trail, transition checks, hop budget all on) against the same nodes "
            f"written by hand in plain LangGraph (`benchmarks/handwritten.py`: keyword rules then "
            f"the LLM tier, the same `create_agent` specialists with the same tools and prompts, "
            f"the human-triage node). Both use the same scripted model with zero latency, "
            f"{len(texts)} single-request threads across the four domains per pass, "
            f"{sizes.repeats} interleaved passes per contender and saver after a warm-up. "
            f"A step is one node execution (an `updates` chunk)."
        ),
        tables=[table], verdict=verdict, plots=[plot],
        headline=f"orchestration overhead: accord {worst:.2f}× hand-written LangGraph per request "
                 f"(worst saver), {worst_step:.2f}× per step",
    )
