"""Section 9: a Locust load test of the runs API, approvals included, on a server and two workers.

``accord serve --workers-queue`` and two ``accord worker`` processes on a fresh PostgreSQL
database run the support example (catalog graph ``support``, its rule-based agents) for
customers of a seeded company with one invoice per request (``benchmarks/load/seed.py``).
Locust (``benchmarks/load/locustfile.py``, headless, loopback only) plays the users: each
submits a $150 refund, follows the thread's event stream until it waits for approval, approves
it with LangChain's decision shape, follows the stream until the thread is done and reads its
status; a thread that ends other than ``done`` is a failure. Afterwards the support database is
checked: every request paid once.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.env import BenchEnv
from benchmarks.load.seed import seed_invoices
from benchmarks.plots import panels
from benchmarks.s8_scaling import fleet_of, scratch
from benchmarks.stats import Section, Table

HERE = Path(__file__).resolve().parent
LOCUST = str(Path(sys.executable).with_name("locust"))
OFFSET = 2000
"""The first seeded invoice (``INV-2000``)."""
WORKERS = 2


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%")


def summary(text: str) -> dict[str, dict[str, str]]:
    """Locust's final tables (``--only-summary`` on stdout), by request name: count, failures,
    per second, percentiles. (The CSV files are written every second, so they may miss the
    requests of the last one.)"""
    rows: dict[str, dict[str, str]] = {}
    in_percentiles = False
    for line in text.splitlines():
        if line.startswith("Response time percentiles"):
            in_percentiles = True
        if not line.strip() or line.startswith(("Type", "--------", "[", "Response", "Error")):
            continue
        typed = not line[0].isspace()
        if not in_percentiles and line.count("|") == 2:
            left, times, rates = line.split("|")
            words = left.split()
            if len(words) < 3 or "(" not in words[-1]:
                continue
            name = " ".join(words[1 if typed else 0:-2])
            rows.setdefault(name, {}).update(
                type=words[0] if typed else "", count=words[-2],
                failures=words[-1].split("(")[0], max=times.split()[2],
                rate=rates.split()[0])
        elif in_percentiles and "|" not in line:
            words = line.split()
            if len(words) < 13 or not words[-1].isdigit():
                continue
            name = " ".join(words[1 if typed else 0:-12])
            rows.setdefault(name, {}).update(zip(PERCENTILES, words[-12:-1], strict=True))
    return rows


def _locust(env: BenchEnv, base: str, tmp: Path) -> tuple[subprocess.CompletedProcess, Path]:
    sizes = env.sizes
    prefix = tmp / "locust"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ACCORD_"))}
    run_env.update(ACCORD_LOAD_REQUESTS=str(sizes.locust_requests),
                   ACCORD_LOAD_OFFSET=str(OFFSET))
    done = subprocess.run(
        [LOCUST, "-f", str(HERE / "load" / "locustfile.py"), "--headless",
         "-u", str(sizes.locust_users), "-r", str(sizes.locust_users),
         "--run-time", f"{sizes.locust_seconds}s", "--host", base, "--only-summary",
         "--csv", str(prefix), "--csv-full-history"],
        cwd=tmp, env=run_env, capture_output=True, text=True,
        timeout=sizes.locust_seconds + 120, check=False)
    return done, prefix


def run(env: BenchEnv, progress: Any) -> Section:
    sizes = env.sizes
    task = progress.add_task("9. Locust load test", total=1)
    name = "s9_locust"
    tmp = scratch(env, name)
    seed_invoices(tmp / "support.db", OFFSET, sizes.locust_requests)
    with fleet_of(env, name, WORKERS, sizes.locust_users) as fleet:
        done, prefix = _locust(env, fleet.base, tmp)
    progress.advance(task)
    if done.returncode not in (0, 1):  # 1: Locust saw failures (counted below)
        raise RuntimeError(f"locust exited {done.returncode}: {done.stderr[-2000:]}")
    from accord.graphs.support import SupportDB

    refunds = SupportDB(tmp / "support.db").refunds()
    paid = {r["invoice_id"] for r in refunds}
    return _report(env, summary(done.stdout + done.stderr),
                   _rows(Path(f"{prefix}_stats_history.csv")),
                   _rows(Path(f"{prefix}_failures.csv")), len(refunds), len(paid))


def _report(env: BenchEnv, stats: dict[str, dict[str, str]], history: list[dict[str, str]],
            failures: list[dict[str, str]], refunds: int, invoices: int) -> Section:
    sizes = env.sizes
    table = Table(
        f"Locust, {sizes.locust_users} users, {sizes.locust_requests:,} refunds with approvals "
        f"(`accord serve --workers-queue` + {WORKERS} `accord worker`, PostgreSQL): per request "
        "kind; `thread refund` is a whole request, submit to done (ms)",
        ["type", "name", "count", "failures", "per second", "p50", "p95", "p99", "max"])
    for name, row in stats.items():
        table.add(row.get("type", ""), name, row.get("count", "0"), row.get("failures", "0"),
                  row.get("rate", "0"), row.get("50%", "–"), row.get("95%", "–"),
                  row.get("99%", "–"), row.get("max", "–"))
    reasons = Table("Failures by cause", ["name", "count", "error"])
    for row in failures:
        reasons.add(row["Name"], row["Occurrences"], row["Error"][:160])
    timeline = [r for r in history if r["Name"] == "refund" and r["Requests/s"] not in ("", "0")]
    last = max((int(r["Total Request Count"]) for r in timeline), default=0)
    ended = next((i for i, r in enumerate(timeline) if int(r["Total Request Count"]) == last),
                 len(timeline))
    timeline = timeline[:ended + 1]  # not the idle seconds after the last request
    start = float(timeline[0]["Timestamp"]) if timeline else 0.0
    xs = [float(r["Timestamp"]) - start for r in timeline]

    def series(key: str) -> list[float]:
        return [float(r[key]) if r[key] not in ("", "N/A") else 0.0 for r in timeline]

    plot = panels(env.plots / "9_locust.png",
                  f"Locust: {sizes.locust_requests:,} refunds with approvals, serve + {WORKERS} "
                  "workers", xs,
                  [("Refunds completed per second", "requests / s",
                    {"refunds / s": series("Requests/s")}),
                   ("Whole-request latency", "ms",
                    {"p50": series("50%"), "p95": series("95%"), "p99": series("99%")})],
                  xlabel="seconds")
    thread = stats.get("refund", {})
    count = int(thread.get("count") or 0)
    failed = int(thread.get("failures") or 0)
    total_failed = int(stats.get("Aggregated", {}).get("failures") or 0)
    met = count == sizes.locust_requests and total_failed == 0 and refunds == invoices == count
    verdict = (
        f"**Target (all {sizes.locust_requests:,} requests done, 0 failures, each paid once): "
        f"{'met' if met else 'missed'}**: {count:,} requests, {failed} failed threads, "
        f"{total_failed} failed HTTP requests or threads in all; {refunds:,} refunds on "
        f"{invoices:,} distinct invoices; {thread.get('rate')} whole requests per second, "
        f"p50 {thread.get('50%')} ms, p95 {thread.get('95%')} ms, p99 {thread.get('99%')} ms.")
    return Section(
        9, "Load test: Locust through the runs API",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
        tables=[table, reasons] if failures else [table], plots=[plot], verdict=verdict,
        headline=(f"{count:,} refunds with approvals through the API, {total_failed} failures, "
                  f"{thread.get('rate')}/s, p95 {thread.get('95%')} ms"),
    )
