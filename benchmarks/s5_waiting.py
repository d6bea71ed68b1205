"""Section 5: many threads paused at an approval: memory stays flat, listing stays fast."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import uuid
from typing import Any

import psycopg
from langgraph.types import Command

from accord.checkpoints import open_async_saver, open_saver
from accord.graphs.support import SupportDB, build_support
from benchmarks.env import BenchEnv, rss_bytes
from benchmarks.plots import lines
from benchmarks.s4_resume import APPROVE, REFUND, THRESHOLD
from benchmarks.stats import Section, Table

CONCURRENCY = 16


async def _fill(graph: Any, count: int, progress: Any, task: Any,
                samples: list[tuple[int, float]]) -> list[str]:
    """Put ``count`` threads at the approval, sampling RSS as they pile up."""
    ids: list[str] = []
    step = max(1, count // 10)
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            tid = uuid.uuid4().hex
            config = {"configurable": {"thread_id": tid}}
            await graph.ainvoke({"messages": [{"role": "user", "content": REFUND}]}, config)
            ids.append(tid)
            progress.advance(task)
            if len(ids) % step == 0:
                gc.collect()
                samples.append((len(ids), rss_bytes() / 2**20))

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return ids


def _timed(fn: Any, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _scan(saver: Any) -> int:
    """The alternative to the index: read every thread's latest checkpoint, keep the paused."""
    waiting = 0
    for tid in _thread_ids(saver):
        found = saver.get_tuple({"configurable": {"thread_id": tid, "checkpoint_ns": ""}})
        waiting += any(w[1] == "__interrupt__" for w in (found.pending_writes or []))
    return waiting


def _thread_ids(saver: Any) -> list[str]:
    from accord.checkpoints.prune import _thread_ids as ids

    return list(ids(saver))


def run(env: BenchEnv, progress: Any) -> Section:
    count = env.sizes.waiting_threads
    label, url = ("PostgreSQL", env.postgres_url("waiting")) if env.postgres else (
        "SQLite", env.sqlite_url("waiting"))
    workflow = build_support(db=SupportDB(env.tmp / "support-waiting.db"), use_llm=False,
                             refund_threshold=THRESHOLD)
    task = progress.add_task("5 waiting threads", total=count)
    gc.collect()
    samples: list[tuple[int, float]] = [(0, rss_bytes() / 2**20)]

    # Putting the threads in place is set-up, not the measurement: on PostgreSQL it runs with
    # synchronous_commit off (one fsync per commit would make it take minutes on this disk).
    fill_url = url + "?options=-csynchronous_commit%3Doff" if label == "PostgreSQL" else url

    async def fill() -> list[str]:
        async with open_async_saver(fill_url) as saver:
            graph = workflow.compile(checkpointer=saver)
            await graph.ainvoke({"messages": [{"role": "user", "content": REFUND}]},
                                {"configurable": {"thread_id": "warm-up"}})
            gc.collect()
            samples[0] = (0, rss_bytes() / 2**20)
            return await _fill(graph, count, progress, task, samples)

    start = time.perf_counter()
    ids = asyncio.run(fill())
    fill_seconds = time.perf_counter() - start
    with open_saver(url) as saver:
        index = saver.threads
        listed = len(index.list(status="interrupted"))
        list_all = _timed(lambda: index.list(status="interrupted"))
        list_page = _timed(lambda: index.list(status="interrupted", limit=50))
        scan_start = time.perf_counter()
        scanned = _scan(saver)
        scan_ms = (time.perf_counter() - scan_start) * 1000
        graph = workflow.compile(checkpointer=saver)
        resumes = []
        for tid in ids[:5]:
            config = {"configurable": {"thread_id": tid}}
            t = time.perf_counter()
            graph.invoke(Command(resume=APPROVE), config)
            resumes.append(time.perf_counter() - t)
        resume_ms = statistics.median(resumes) * 1000
    plan = ""
    if label == "PostgreSQL":
        with psycopg.connect(url) as conn:
            conn.execute("ANALYZE accord_threads")
            rows = conn.execute(
                "EXPLAIN SELECT * FROM accord_threads WHERE status = 'interrupted' "
                "ORDER BY updated_at DESC LIMIT 50").fetchall()
            plan = " / ".join(r[0].strip() for r in rows[:2])
        env.drop(url)
    rss0, rss1 = samples[0][1], samples[-1][1]
    per_thread_kib = (rss1 - rss0) * 1024 / max(1, count)
    table = Table(f"{count:,} threads paused at an approval ({label})",
                  ["measure", "value"])
    table.add("time to put them in place", f"{fill_seconds:.1f} s ({count / fill_seconds:.0f} threads/s)")
    table.add("resident memory before → after", f"{rss0:.0f} MiB → {rss1:.0f} MiB "
              f"({per_thread_kib:.2f} KiB per waiting thread)")
    table.add("pending approvals found: index / scan", f"{listed:,} / {scanned:,}")
    table.add("list all pending (index), median of 5", f"{list_all:.1f} ms")
    table.add("list first page of 50 (index), median of 5", f"{list_page:.2f} ms")
    table.add("find them by scanning checkpoints", f"{scan_ms:,.0f} ms")
    table.add("resume one (approve, run to the end), median of 5", f"{resume_ms:.1f} ms")
    if plan:
        table.add("query plan of the page", f"`{plan}`")
    plot = lines(env.plots / "5_memory.png", "Resident memory while threads pile up at an approval",
                 [s[0] for s in samples], {"RSS (MiB)": [s[1] for s in samples]},
                 xlabel="threads waiting", ylabel="MiB")
    flat = per_thread_kib < 1.0
    return Section(
        5, "Many waiting threads",
        method=(
            f"{count:,} threads, each run until the refund approval interrupts it "
            f"(`graph.ainvoke` on `open_async_saver`, {CONCURRENCY} at a time, rule-based agents; "
            f"the model plays no part in waiting); the engine records each in the thread index as "
            f"`interrupted` with its pending approval when the run ends (on PostgreSQL this set-up runs with "
            f"`synchronous_commit=off`; the measurements after it do not). Resident memory of this process "
            f"(`VmRSS`, after `gc.collect()`) is sampled every tenth of the way. Then: listing "
            f"the pending approvals with `saver.threads.list(status='interrupted')` (all, "
            f"and a page of 50) against finding them by scanning every thread's latest checkpoint "
            f"for an interrupt, and resuming one with `Command(resume=approve)`."
        ),
        tables=[table], plots=[plot],
        verdict=(
            f"Memory {'stays flat' if flat else 'grows'}: {per_thread_kib:.2f} KiB per waiting "
            f"thread (state lives in the database, not in the process). A page of pending "
            f"approvals comes from an index in {list_page:.2f} ms; the scan takes "
            f"{scan_ms / max(list_page, 1e-9):,.0f}× as long and grows with every thread."
        ),
        headline=f"{count:,} waiting threads: RSS {rss0:.0f} → {rss1:.0f} MiB, page of pending "
                 f"approvals {list_page:.2f} ms (scan {scan_ms:,.0f} ms), resume one {resume_ms:.0f} ms",
    )
