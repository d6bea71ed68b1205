"""Section 6: storage: what a request costs, how one thread grows, what ``prune --keep-latest`` keeps."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import psycopg

from accord.agents import ModelResolver
from accord.checkpoints import open_saver, prune_saver
from accord.checkpoints.prune import measure
from accord.graphs.support import SupportDB, build_support
from benchmarks.env import BenchEnv
from benchmarks.llm import scripted_model
from benchmarks.plots import grouped_bars, panels
from benchmarks.savers import sqlite_path
from benchmarks.stats import Section, Spread, Table, fmt, fmt_spread
from benchmarks.workload import build_workload, flatten, labels_of

FLAT = 0.2
"""Target: bytes per checkpoint within ±20% of the one-request value as the thread grows."""
CHECKPOINT_TABLES = {"SQLite": ("checkpoints", "writes"),
                     "PostgreSQL": ("checkpoints", "checkpoint_writes", "checkpoint_blobs")}
ACCORD_TABLES = ("accord_audit", "accord_ledger", "accord_threads")
CONTINUED = 3
"""Pruned threads that get one more request, to show they go on."""


def _kib(n: float | None) -> str:
    return "–" if n is None else f"{n / 1024:,.1f}"


# what the database holds for one thread --------------------------------------------------------

def _columns(cur: Any, label: str, table: str) -> list[str]:
    if label == "SQLite":
        return [row[1] for row in cur.execute(f"PRAGMA table_info({table})").fetchall()]
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "ORDER BY ordinal_position", (table,))
    return [row[0] for row in cur.fetchall()]


def _thread_rows(label: str, url: str, thread_id: str,
                 tables: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """``table -> (rows, bytes)`` of one thread: the stored size of every column value of its
    rows (PostgreSQL ``pg_column_size``, after compression; SQLite ``length(CAST(col AS
    BLOB))``), without page, row-header and index overhead."""
    out: dict[str, tuple[int, int]] = {}
    if label == "SQLite":
        conn = sqlite3.connect(sqlite_path(url))
        try:
            cur = conn.cursor()
            for table in tables:
                size = " + ".join(f"coalesce(length(CAST({c} AS BLOB)), 0)"
                                  for c in _columns(cur, label, table))
                rows, total = cur.execute(f"SELECT count(*), coalesce(sum({size}), 0) FROM {table}"
                                          " WHERE thread_id = ?", (thread_id,)).fetchone()
                out[table] = (rows, total)
        finally:
            conn.close()
        return out
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for table in tables:
            size = " + ".join(f"coalesce(pg_column_size({c}), 0)"
                              for c in _columns(cur, label, table))
            cur.execute(f"SELECT count(*), coalesce(sum({size}), 0) FROM {table} "
                        "WHERE thread_id = %s", (thread_id,))
            rows, total = cur.fetchone()
            out[table] = (int(rows), int(total))
    return out


def _table_bytes(label: str, url: str) -> dict[str, int]:
    """Bytes on disk per table, its indexes (and TOAST) included: SQLite's ``dbstat`` pages,
    PostgreSQL's ``pg_total_relation_size``."""
    if label == "SQLite":
        conn = sqlite3.connect(sqlite_path(url))
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = conn.execute("SELECT s.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_schema s"
                                " ON s.name = d.name GROUP BY s.tbl_name").fetchall()
        finally:
            conn.close()
        return {name: int(size) for name, size in rows}
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace").fetchall()
    return {name: int(size) for name, size in rows}


def _split(label: str, sizes: dict[str, int]) -> tuple[int, int]:
    """(checkpoint tables, accord's tables) bytes."""
    return (sum(sizes.get(t, 0) for t in CHECKPOINT_TABLES[label]),
            sum(sizes.get(t, 0) for t in ACCORD_TABLES))


def _message(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _parts(saver: Any, thread_id: str) -> dict[str, int]:
    """Serialized bytes of the thread's latest checkpoint, by part (the saver's serializer)."""
    found = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    checkpoint = found.checkpoint

    def size(value: Any) -> int:
        return len(saver.serde.dumps_typed(value)[1])

    parts = {f"`{k}`": size(v) for k, v in checkpoint["channel_values"].items()}
    parts["channel versions"] = size(checkpoint["channel_versions"])
    parts["versions seen"] = size(checkpoint["versions_seen"])
    parts["metadata"] = size(found.metadata)
    return parts


def _growth(env: BenchEnv, label: str, url: str, workflow: Any, texts: list[str],
            progress: Any, task: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One thread receiving ``texts`` in order: the thread's rows at each growth point, and
    what each request added to them (its own checkpoints and their writes and blobs)."""
    points: list[dict[str, Any]] = []
    own: list[dict[str, Any]] = []
    thread = uuid.uuid4().hex
    config = {"configurable": {"thread_id": thread}}
    previous = (0, 0)  # (checkpoints, bytes) the thread held before this request
    with open_saver(url) as saver:
        graph = workflow.compile(checkpointer=saver)
        for i, text in enumerate(texts, 1):
            graph.invoke(_message(text), config)
            progress.advance(task)
            stored = _thread_rows(label, url, thread, CHECKPOINT_TABLES[label])
            now = (stored["checkpoints"][0], sum(b for _, b in stored.values()))
            own.append({"requests": i, "checkpoints": now[0] - previous[0],
                        "bytes": now[1] - previous[1],
                        "per_checkpoint": (now[1] - previous[1]) / (now[0] - previous[0])})
            previous = now
            if i in env.sizes.growth:
                mine = _thread_rows(label, url, thread, ACCORD_TABLES)
                checkpoints = stored["checkpoints"][0]
                data = sum(b for _, b in stored.values())
                points.append({
                    "requests": i, "checkpoints": checkpoints,
                    "rows": {t: r for t, (r, _) in stored.items()},
                    "table_bytes": {t: b for t, (_, b) in stored.items()},
                    "bytes": data, "per_checkpoint": data / checkpoints,
                    "audit_rows": mine["accord_audit"][0], "audit_bytes": mine["accord_audit"][1],
                    "accord_bytes": sum(b for _, b in mine.values()),
                    "messages": len(graph.get_state(config).values["messages"]),
                    "parts": _parts(saver, thread),
                    "own": own[-1],
                })
        if label == "SQLite":  # each checkpoint row's own size, in the order written
            conn = sqlite3.connect(sqlite_path(url))
            try:
                rows = conn.execute(
                    "SELECT length(checkpoint) FROM checkpoints WHERE thread_id = ? AND "
                    "checkpoint_ns = '' ORDER BY checkpoint_id", (thread,)).fetchall()
            finally:
                conn.close()
            own[0]["rows"] = [r[0] for r in rows[:own[0]["checkpoints"]]]
            if len(own) > 1:
                own[1]["rows"] = [r[0] for r in rows[own[0]["checkpoints"]:][:own[1]["checkpoints"]]]
    return points, own


def run(env: BenchEnv, progress: Any) -> Section:
    sizes = env.sizes
    convos = build_workload(sizes.storage_requests, follow_ups=1, seed=5)
    requests = sum(len(c) for c in convos)
    growth_convo = build_workload(max(sizes.growth), follow_ups=max(sizes.growth) - 1, seed=13)
    growth_texts = [r.text for r in flatten(growth_convo)]
    labels = {**labels_of(convos), **labels_of(growth_convo)}
    workflow = build_support(db=SupportDB(env.tmp / "support-storage.db"), use_llm=True,
                             models=ModelResolver(models={"*": scripted_model(labels)}),
                             refund_threshold=1e9)
    table = Table(f"{requests} completed requests in {len(convos)} threads of two: checkpoint "
                  "tables on disk (KiB), before and after prune",
                  ["database", "checkpoints", "KiB", "bytes / checkpoint", "bytes / request",
                   "after prune --keep-latest", "checkpoints after", "bytes / request after",
                   "rows: checkpoints / writes / blobs, before → after",
                   "accord's tables: KiB before → after; audit events / request"])
    checks = Table("After `prune --keep-latest`", ["database", "conversations intact",
                                                   "pruned threads that took one more request"])
    bars: dict[str, list[Spread]] = {"before": [], "after prune": []}
    labels_db: list[str] = []
    growth: dict[str, list[dict[str, Any]]] = {}
    own: dict[str, list[dict[str, Any]]] = {}
    with env.databases() as databases:
        task = progress.add_task("6 storage", total=len(databases) * (
            requests + CONTINUED + len(growth_texts)))
        for label, url in databases:
            threads: list[str] = []
            with open_saver(url) as saver:
                graph = workflow.compile(checkpointer=saver)
                for convo in convos:
                    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
                    threads.append(config["configurable"]["thread_id"])
                    for request in convo:
                        graph.invoke(_message(request.text), config)
                        progress.advance(task)
                messages = {t: len(graph.get_state(
                    {"configurable": {"thread_id": t}}).values["messages"]) for t in threads}
                if label == "SQLite":
                    with saver.cursor() as cur:  # what a reader of the file sees on disk
                        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                audit_rows = sum(len(saver.audit_log(t)) for t in threads)
                disk_before = _split(label, _table_bytes(label, url))
                report = prune_saver(saver, keep_latest=True)
                before, after = report.before, report.after
            note = ""
            if label == "PostgreSQL":  # deleted rows keep their space until VACUUM
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM FULL checkpoints, checkpoint_blobs, checkpoint_writes")
                with open_saver(url) as saver:
                    after = measure(saver)
                note = " (VACUUM FULL)"
            disk_after = _split(label, _table_bytes(label, url))
            with open_saver(url) as saver:  # the pruned threads go on
                graph = workflow.compile(checkpointer=saver)
                intact = sum(len(graph.get_state({"configurable": {"thread_id": t}})
                                 .values["messages"]) == n for t, n in messages.items())
                went_on = 0
                for t in threads[:CONTINUED]:
                    config = {"configurable": {"thread_id": t}}
                    graph.invoke(_message(convos[0][0].text), config)
                    went_on += len(graph.get_state(config).values["messages"]) == messages[t] + 2
                    progress.advance(task)
            checks.add(label, f"{intact} / {len(threads)} (message count as before)",
                       f"{went_on} / {CONTINUED}")
            table.add(label, str(before.checkpoints), _kib(disk_before[0]),
                      fmt(disk_before[0] / before.checkpoints, 0),
                      fmt(disk_before[0] / requests, 0), _kib(disk_after[0]) + note,
                      str(after.checkpoints), fmt(disk_after[0] / requests, 0),
                      f"{before.checkpoints} / {before.writes} / {before.blobs} → "
                      f"{after.checkpoints} / {after.writes} / {after.blobs}",
                      f"{_kib(disk_before[1])} → {_kib(disk_after[1])}; "
                      f"{audit_rows / requests:.1f}")
            labels_db.append(label)
            bars["before"].append(Spread.of([disk_before[0] / 1024]))
            bars["after prune"].append(Spread.of([disk_after[0] / 1024]))
            growth_url = env.sqlite_url("growth") if label == "SQLite" else env.postgres_url("growth")
            growth[label], own[label] = _growth(env, label, growth_url, workflow, growth_texts,
                                                progress, task)
            if label == "PostgreSQL":
                env.drop(growth_url)
    plot = grouped_bars(env.plots / "6_storage.png", "Checkpoint storage (KiB)", labels_db, bars)

    growth_table = Table(
        "One thread growing: what the database holds for it (bytes of the stored values)",
        ["database", "requests", "checkpoints", "rows: checkpoints / writes / blobs",
         "bytes / checkpoint", "of which checkpoints / writes / blobs", "vs 1 request",
         "bytes / thread", "messages",
         "accord's rows: audit events (bytes)", "accord's rows, all (bytes)"])
    flat: dict[str, float] = {}
    for label, points in growth.items():
        first = points[0]["per_checkpoint"]
        flat[label] = max(abs(p["per_checkpoint"] / first - 1) for p in points)
        for p in points:
            rows = " / ".join(str(n) for n in p["rows"].values())
            growth_table.add(label, str(p["requests"]), str(p["checkpoints"]),
                             rows + (" / –" if label == "SQLite" else ""),
                             fmt(p["per_checkpoint"], 0),
                             " / ".join(fmt(b / p["checkpoints"], 0)
                                        for b in p["table_bytes"].values())
                             + (" / –" if label == "SQLite" else ""),
                             f"{p['per_checkpoint'] / first - 1:+.0%}", fmt(p["bytes"], 0),
                             str(p["messages"]),
                             f"{p['audit_rows']} ({fmt(p['audit_bytes'], 0)})",
                             fmt(p["accord_bytes"], 0))
    kth = sorted({2, *sizes.growth})
    window = max(1, (kth[-1] - 1) // 5)
    """Requests in each window of the fair comparison (9 of 50: requests 2–10 and 42–50)."""
    early_name = f"requests 2–{1 + window}" if window > 1 else "request 2"
    late_name = (f"requests {kth[-1] - window + 1}–{kth[-1]}" if window > 1
                 else f"request {kth[-1]}")
    own_table = Table(
        "One thread growing: what the k-th request itself adds (its own checkpoints with their "
        "writes and blobs; bytes of the stored values)",
        ["database", "k-th request", "its checkpoints", "its bytes", "bytes / checkpoint",
         "vs request 1", f"median bytes / checkpoint, {early_name} → {late_name} (min–max)",
         "change"])
    own_flat: dict[str, float] = {}
    for label, per in own.items():
        by_k = {p["requests"]: p for p in per}
        early = Spread.of([p["per_checkpoint"] for p in per[1:1 + window]])
        late = Spread.of([p["per_checkpoint"] for p in per[-window:]])
        own_flat[label] = abs(late.median / early.median - 1)
        base1 = by_k[1]["per_checkpoint"]
        for k in kth:
            p = by_k[k]
            last = k == kth[-1]
            own_table.add(label, str(k), str(p["checkpoints"]), fmt(p["bytes"], 0),
                          fmt(p["per_checkpoint"], 0), f"{p['per_checkpoint'] / base1 - 1:+.0%}",
                          f"{fmt_spread(early, 0)} → {fmt_spread(late, 0)}" if last else "",
                          f"{late.median / early.median - 1:+.0%}" if last else "")
    first_db = next(iter(growth))
    names = sorted({k for p in growth[first_db] for k in p["parts"]},
                   key=lambda k: -growth[first_db][-1]["parts"].get(k, 0))
    parts_table = Table(
        f"The growing thread's latest checkpoint by part ({first_db}; serialized bytes, the "
        "saver's own serializer): what changes as the thread grows",
        ["requests", *names, "all"])
    for p in growth[first_db]:
        parts_table.add(str(p["requests"]), *(fmt(p["parts"].get(k, 0), 0) for k in names),
                        fmt(sum(p["parts"].values()), 0))
    xs = list(sizes.growth)
    growth_plot = panels(
        env.plots / "6_growth.png", "One thread growing", xs,
        [("bytes per checkpoint", "bytes",
          {label: [p["per_checkpoint"] for p in points] for label, points in growth.items()}),
         ("bytes per checkpoint ÷ its 1-request value", "ratio",
          {label: [p["per_checkpoint"] / points[0]["per_checkpoint"] for p in points]
           for label, points in growth.items()}),
         ("bytes per thread", "bytes",
          {**{f"{label} checkpoints + writes + blobs": [p["bytes"] for p in points]
              for label, points in growth.items()},
           **{f"{label} accord's rows": [p["accord_bytes"] for p in points]
              for label, points in growth.items()}})],
        xlabel="requests the thread has received", logx=True, band=(1 - FLAT, 1 + FLAT, 1))
    met = all(v <= FLAT for v in flat.values())
    verdict = [
        f"**Target (bytes per checkpoint flat within ±{FLAT:.0%} from {xs[0]} to {xs[-1]} requests "
        f"on one thread): {'met' if met else 'missed'}** — largest deviation from the "
        f"{xs[0]}-request value: " + ", ".join(f"{k} {v:.0%}" for k, v in flat.items()) + "."]
    for label, points in growth.items():
        first, second, last = points[0], points[min(1, len(points) - 1)], points[-1]
        grew = {t: last["rows"][t] / last["checkpoints"] - first["rows"][t] / first["checkpoints"]
                for t in last["rows"]}
        verdict.append(
            f"{label}: bytes per checkpoint {first['per_checkpoint']:,.0f} → "
            f"{second['per_checkpoint']:,.0f} → {last['per_checkpoint']:,.0f} at "
            f"{', '.join(str(p['requests']) for p in (first, second, last))} requests "
            f"({last['per_checkpoint'] / second['per_checkpoint'] - 1:+.0%} from "
            f"{second['requests']} to {last['requests']}); rows per checkpoint change by "
            + ", ".join(f"{t} {d:+.2f}" for t, d in grew.items())
            + f"; at {last['requests']} requests the thread's rows hold, per checkpoint, "
            + " / ".join(f"{t} {b / last['checkpoints']:,.0f}"
                         for t, b in last["table_bytes"].items())
            + " bytes per checkpoint"
            + (" (SQLite has no blobs table: each checkpoint row carries every channel's "
               "value, so its size follows the whole state, below)" if label == "SQLite" else
               " (a channel's value is stored in `checkpoint_blobs` once per new version)")
            + f"; a thread's bytes grow {last['bytes'] / first['bytes']:.1f}× over "
            f"{last['requests'] / first['requests']:.0f}× the requests.")
    def rows_of(k: int) -> str:
        sqlite_own = own.get("SQLite", [])
        found = sqlite_own[k].get("rows") if len(sqlite_own) > k else None
        return " / ".join(f"{n:,}" for n in found) if found else "–"

    verdict.append(
        "Why the average over the whole thread is not flat on SQLite (measured row by row): "
        "(1) a thread's first request starts from an empty state, so its first checkpoints "
        "(the input and the router's) carry no channel values: the checkpoint rows of request 1 "
        f"are {rows_of(0)} bytes, those of request 2 {rows_of(1)}; (2) the stock SQLite "
        "saver stores every channel's value inline in each checkpoint row, so the state a "
        "request carries over (the current request's `audit`, `tasks` and `outputs`, bounded "
        "by design) is written again into each checkpoint until the router resets it, while "
        "PostgreSQL stores a channel's value once per new version in `checkpoint_blobs`; "
        "(3) `channel versions` and `versions seen` gain an entry per graph node the thread "
        "has run (bounded by the graph: it stops once every agent has answered once, so "
        "it also lifts the later window above the early one, which starts before that). "
        "None of the three grows with the number of requests; the k-th request's own rows "
        "(table above: a fair measure of whether a checkpoint's size depends on the thread's "
        "age, medians of windows that mix every kind of request) show it: "
        + "; ".join(f"{label}: median of {late_name} within {v:.0%} of {early_name} "
                    f"({'within' if v <= FLAT else 'outside'} ±{FLAT:.0%})"
                    for label, v in own_flat.items())
        + "." + ("" if met else " The target as stated (the thread's average against a "
                 "one-request thread) stays missed, for reason (1)."))
    p0, p1 = growth[first_db][0]["parts"], growth[first_db][-1]["parts"]
    changes = sorted(((k, p1.get(k, 0) - p0.get(k, 0)) for k in names), key=lambda kv: -kv[1])
    verdict.append(
        f"What the checkpoint gains from {xs[0]} to {xs[-1]} requests ({first_db}, by part): "
        + ", ".join(f"{k} {d:+,} bytes" for k, d in changes if d) + ". The conversation "
        "(`messages`, a `DeltaChannel`) is not in the checkpoint at all: each step stores its "
        "new messages as task writes.")
    verdict.append(
        "Without a target: every step of a run is still stored as a checkpoint (accord defers "
        "some writes to travel together, it does not drop them), so a completed request costs "
        "several; `prune --keep-latest` keeps each thread's latest checkpoint with its "
        "conversation written out in full (a thread whose conversation is a `DeltaChannel` is "
        "compacted), and the table above shows the pruned threads intact and going on.")
    return Section(
        6, "Storage",
        method=(
            f"**Per request and prune:** {requests} requests ({len(convos)} threads of two) run "
            "to completion through the support workflow (LLM agents, scripted model) on a fresh "
            "database; then `accord.checkpoints.prune_saver(saver, keep_latest=True)` (what "
            "`accord prune --keep-latest` runs: `saver.prune(ids, strategy=\"keep_latest\")`, "
            "which compacts a thread whose conversation is a `DeltaChannel`). Sizes from "
            "the disk pages of each table with its indexes: SQLite's `dbstat` (after a WAL "
            "checkpoint; prune VACUUMs the file), PostgreSQL's `pg_total_relation_size` (after "
            "prune, PostgreSQL keeps deleted rows' space for reuse until VACUUM; the table shows "
            "the size after `VACUUM FULL`); the checkpoint tables (`checkpoints`, `writes` / "
            "`checkpoint_writes`, `checkpoint_blobs`) and accord's own (`accord_audit`, "
            "`accord_ledger`, `accord_threads`) apart; row counts from "
            "`accord.checkpoints.prune.measure`. After the prune "
            "every thread's conversation is read back (`graph.get_state(...).values[\"messages\"]`)"
            f" and {CONTINUED} pruned threads take one more request. **Growth:** one thread "
            f"receives {xs[-1]} requests in a row (the same workflow and model) on a fresh "
            f"database; after {', '.join(map(str, xs))} requests the rows the database holds for "
            "that thread are measured: checkpoints + task writes (+ blobs on PostgreSQL), each "
            "counted as the stored size of every column value of the thread's rows "
            "(PostgreSQL `pg_column_size`, after compression; SQLite `length(CAST(col AS BLOB))`)"
            ", without page, row-header and index overhead; accord's rows (audit events, tool "
            "ledger, thread index) the same way, apart."
        ),
        tables=[table, checks, growth_table, own_table, parts_table], plots=[plot, growth_plot],
        verdict="\n\n".join(verdict),
        headline=(f"one thread, {xs[0]} → {xs[-1]} requests: bytes per checkpoint within "
                  + ", ".join(f"{k} {v:.0%}" for k, v in flat.items())
                  + f" (target ±{FLAT:.0%} {'met' if met else 'missed'}); the k-th "
                  f"request's own bytes per checkpoint, {late_name} against {early_name}: "
                  "within "
                  + ", ".join(f"{k} {v:.0%}" for k, v in own_flat.items()) + "; "
                  f"{table.rows[0][0]}: {table.rows[0][4]} bytes per completed request, "
                  f"{table.rows[0][7]} after prune --keep-latest"),
    )
