"""Section 6: bytes per checkpoint and per completed request; size after ``prune --keep-latest``."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from accord.agents import ModelResolver
from accord.checkpoints import open_saver, prune
from accord.checkpoints.prune import measure
from accord.graphs.support import SupportDB, build_support
from benchmarks.env import BenchEnv
from benchmarks.llm import scripted_model
from benchmarks.plots import grouped_bars
from benchmarks.stats import Section, Spread, Table, fmt
from benchmarks.workload import build_workload, labels_of


def _kib(n: float | None) -> str:
    return "–" if n is None else f"{n / 1024:,.1f}"


def run(env: BenchEnv, progress: Any) -> Section:
    convos = build_workload(env.sizes.storage_requests, follow_ups=1, seed=5)
    requests = sum(len(c) for c in convos)
    labels = labels_of(convos)
    workflow = build_support(db=SupportDB(env.tmp / "support-storage.db"), use_llm=True,
                             models=ModelResolver(models={"*": scripted_model(labels)}),
                             refund_threshold=1e9)
    table = Table(f"{requests} completed requests in {len(convos)} threads (sizes in KiB)",
                  ["database", "checkpoints", "KiB", "bytes / checkpoint", "bytes / request",
                   "after prune --keep-latest", "checkpoints after", "bytes / request after",
                   "rows: checkpoints / writes / blobs, before → after"])
    bars: dict[str, list[Spread]] = {"before": [], "after prune": []}
    labels_db: list[str] = []
    with env.databases() as databases:
        task = progress.add_task("6 storage", total=len(databases) * requests)
        for label, url in databases:
            with open_saver(url) as saver:
                graph = workflow.compile(checkpointer=saver)
                for convo in convos:
                    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
                    for request in convo:
                        graph.invoke({"messages": [{"role": "user", "content": request.text}]}, config)
                        progress.advance(task)
                if label == "SQLite":
                    with saver.cursor() as cur:  # what a reader of the file sees on disk
                        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                before = measure(saver)
            report = prune(url, keep_latest=True)
            after = report.after
            note = ""
            if label == "PostgreSQL":  # deleted rows keep their space until VACUUM
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM FULL checkpoints, checkpoint_blobs, checkpoint_writes")
                with open_saver(url) as saver:
                    after = measure(saver)
                note = " (VACUUM FULL)"
            table.add(label, str(before.checkpoints), _kib(before.bytes),
                      fmt(before.bytes / before.checkpoints, 0), fmt(before.bytes / requests, 0),
                      _kib(after.bytes) + note, str(after.checkpoints),
                      fmt(after.bytes / requests, 0),
                      f"{before.checkpoints} / {before.writes} / {before.blobs} → "
                      f"{after.checkpoints} / {after.writes} / {after.blobs}")
            labels_db.append(label)
            bars["before"].append(Spread.of([before.bytes / 1024]))
            bars["after prune"].append(Spread.of([after.bytes / 1024]))
    plot = grouped_bars(env.plots / "6_storage.png", "Checkpoint storage (KiB)", labels_db, bars)
    first = table.rows[0]
    return Section(
        6, "Storage",
        method=(
            f"{requests} requests ({len(convos)} threads of two) run to completion through the "
            "support workflow (LLM agents, scripted model) on a fresh database; then "
            "`accord.checkpoints.prune(url, keep_latest=True)` (what `accord prune --keep-latest` "
            "runs). Sizes from `accord.checkpoints.prune.measure`: the SQLite file plus its WAL "
            "(after a WAL checkpoint; prune VACUUMs the file), and `pg_total_relation_size` of "
            "`checkpoints`, `checkpoint_blobs` and `checkpoint_writes` (after prune, PostgreSQL "
            "keeps deleted rows' space for reuse until VACUUM; the table shows the size after "
            "`VACUUM FULL`)."
        ),
        tables=[table], plots=[plot],
        verdict="No target was set. Every step of a run writes a checkpoint, so a completed "
                "request costs several; keeping only the latest checkpoint of each thread "
                "removes most of the bytes while every thread can still continue.",
        headline=f"{first[0]}: {first[3]} bytes per checkpoint, {first[4]} bytes per completed "
                 f"request, {first[7]} after prune --keep-latest",
    )
