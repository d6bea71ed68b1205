"""Section 4: resume latency, from ``Command(resume=...)`` to the next node starting."""

from __future__ import annotations

import time
import uuid
from typing import Any

from langgraph.types import Command

from accord.checkpoints import open_saver
from accord.graphs.support import SupportDB, build_support
from benchmarks.env import BenchEnv
from benchmarks.plots import grouped_bars
from benchmarks.stats import Section, Spread, Table, fmt

REFUND = "Please refund $5 of invoice INV-1004, I was charged twice"
THRESHOLD = 1.0
"""Refunds above $1 need approval: every request waits, and INV-1004 has room for many."""
APPROVE = {"decision": "approve", "by": "bench"}


def waiting_thread(graph: Any) -> dict[str, Any]:
    """A new thread paused at the refund approval."""
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, config)
    return config


def timed_resume(graph: Any, config: dict[str, Any]) -> tuple[float, float]:
    """Seconds to the first task start, and to the end of the run."""
    start = time.perf_counter()
    first = None
    for chunk in graph.stream(Command(resume=APPROVE), config, stream_mode="tasks"):
        if first is None and "result" not in chunk:
            first = time.perf_counter() - start
    return first if first is not None else float("nan"), time.perf_counter() - start


def run(env: BenchEnv, progress: Any) -> Section:
    n = env.sizes.resumes
    table = Table(f"Resume latency (ms), {n} resumes per database",
                  ["database", "to next node p50", "p95", "min–max", "to end of run p50", "p95"])
    spreads: dict[str, Spread] = {}
    with env.databases() as databases:
        task = progress.add_task("4 resume", total=len(databases) * n)
        for label, url in databases:
            workflow = build_support(db=SupportDB(env.tmp / f"support-resume-{label}.db"),
                                     use_llm=False, refund_threshold=THRESHOLD)
            with open_saver(url) as saver:
                graph = workflow.compile(checkpointer=saver)
                configs = [waiting_thread(graph) for _ in range(n + 2)]
                for config in configs[:2]:  # warm-up
                    timed_resume(graph, config)
                firsts, totals = [], []
                for config in configs[2:]:
                    first, total = timed_resume(graph, config)
                    firsts.append(first * 1000)
                    totals.append(total * 1000)
                    progress.advance(task)
            first_s, total_s = Spread.of(firsts), Spread.of(totals)
            spreads[label] = first_s
            table.add(label, fmt(first_s.median), fmt(first_s.percentile(95)),
                      f"{fmt(first_s.low)}–{fmt(first_s.high)}", fmt(total_s.median),
                      fmt(total_s.percentile(95)))
    plot = grouped_bars(env.plots / "4_resume.png", "Resume to next node start (ms)",
                        list(spreads), {"p50 (whiskers: min–max)": list(spreads.values())})
    worst = max(s.percentile(95) for s in spreads.values())
    return Section(
        4, "Resume latency",
        method=(
            "Threads paused at the refund approval (`Please refund $5 of invoice INV-1004…`, with "
            "the approval threshold lowered to $1), each resumed once with `Command(resume={'decision': 'approve'})` through "
            "`graph.stream(..., stream_mode='tasks')`; the clock runs from the call to the first "
            "task-start event (the approval node starting again: checkpoint loaded, resume value "
            "applied, task scheduled), and on to the end of the run (the refund is issued and "
            "the run ends). Savers from `accord.checkpoints.open_saver`. The model plays "
            "no part in a resume, so the rule-based agents put the threads in place."
            + ("" if env.postgres else " PostgreSQL: skipped: no PostgreSQL.")
        ),
        tables=[table], plots=[plot],
        verdict=f"No target was set; the worst p95 to the next node is {worst:.1f} ms.",
        headline="resume to next node: " + ", ".join(
            f"{k} p50 {fmt(v.median)} ms / p95 {fmt(v.percentile(95))} ms" for k, v in spreads.items()),
    )
