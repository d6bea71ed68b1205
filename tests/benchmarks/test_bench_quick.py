"""The benchmark harness runs end to end in ``--quick`` mode and writes a complete report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TITLES = (
    "Orchestration overhead",
    "Model calls and tokens per request",
    "Throughput under concurrency on PostgreSQL",
    "Resume latency",
    "Many waiting threads",
    "Storage",
    "Lines of code: the publishing desk",
    "Scaling out: worker processes on one PostgreSQL",
    "Load test: Locust through the runs API",
)
PLOTS = {"1_overhead.png", "2_calls.png", "3_throughput.png", "3_latency.png", "4_resume.png",
         "5_memory.png", "6_storage.png", "6_growth.png", "8_scaling.png", "9_locust.png"}
VERDICT = r"\*\*Target \({}[^*]*\): (met|missed)\*\*"


def _sections(report: str) -> dict[int, str]:
    parts = re.split(r"^## (\d)\. .+$", report, flags=re.MULTILINE)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def _rows(section: str, first_cell: str) -> list[list[str]]:
    """Cells of the markdown table rows starting with ``| first_cell |``."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith(f"| {first_cell} |")]


def _number(cell: str) -> float:
    """The median of a ``median (min–max)`` cell."""
    return float(cell.split(" ")[0].replace(",", "").rstrip("×"))


def test_quick_run_writes_every_section(tmp_path: Path, postgres_url: str) -> None:
    env = {**os.environ, "ACCORD_BENCH_POSTGRES_URL": postgres_url, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-P", str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=480, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    headings = re.findall(r"^## (\d)\. (.+)$", report, re.MULTILINE)
    assert headings == [(str(i), t) for i, t in enumerate(TITLES, 1)]
    assert "Skipped" not in report and "failed:" not in report
    referenced = set(re.findall(r"\]\(plots/([\w.]+\.png)\)", report))
    assert referenced == PLOTS
    for plot in referenced:
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
    assert "Storage" in done.stdout and "report:" in done.stdout  # tables printed too
    sections = _sections(report)

    # 1: both contenders, both call styles, on every saver; steps per request; the verdict
    overhead = sections[1]
    for saver in ("none", "SQLite", "PostgreSQL"):
        rows = _rows(overhead, saver)
        assert {(r[1], r[2]) for r in rows} >= {(m, c) for m in ("invoke", "ainvoke")
                                                 for c in ("accord", "LangGraph")}
        assert all(_number(r[3]) > 0 and _number(r[7]) >= 1 for r in rows if len(r) > 7)
    assert re.search(VERDICT.format("accord ≤ 1.1×"), overhead)
    assert "cProfile" in overhead

    # 3: both contenders in the sweep; commits, checkouts, CPU per request for both kinds;
    # the limits and which one binds; both verdicts
    throughput = sections[3]
    for kind in ("fresh thread", "follow-up"):
        rows = {r[1]: r for r in _rows(throughput, kind) if len(r) == 13}  # the accounting table
        assert set(rows) == {"accord", "LangGraph"}
        for row in rows.values():
            assert _number(row[2]) > 0  # commits per request, from pg_stat_database
            assert _number(row[4]) > 0  # pool checkouts per request
            assert _number(row[7]) > 0  # CPU ms per request
    assert "pgbench -N" in throughput and "one Python process" in throughput
    assert re.search(VERDICT.format("accord's CPU per request ≤ 1.1×"), throughput)
    assert re.search(VERDICT.format("≤ 6 commits per completed support request"), throughput)
    assert "**Which limit binds:**" in throughput

    # 6: per-request storage, prune, the growth curve on both databases, the verdict
    storage = sections[6]
    growth = [r for r in _rows(storage, "SQLite") + _rows(storage, "PostgreSQL") if len(r) == 11]
    assert sorted({(r[0], int(r[1])) for r in growth}) == sorted(
        (db, n) for db in ("PostgreSQL", "SQLite") for n in (1, 3, 6))
    checks = [r for r in _rows(storage, "SQLite") + _rows(storage, "PostgreSQL") if len(r) == 3]
    for _db, intact, went_on in checks:
        kept, total = re.match(r"(\d+) / (\d+)", intact).groups()
        assert kept == total
        assert went_on == "3 / 3"
    assert re.search(VERDICT.format("bytes per checkpoint flat within ±20%"), storage)

    # 7: the desk's code lines on both sides, from the files, and the verdict
    lines = sections[7]
    assert "`benchmarks/desk_langgraph.py`" in lines and "`graphs/desk/workflow.py`" in lines
    assert re.search(VERDICT.format("accord ≤ 1/3 of the hand-written lines"), lines)

    # 8: every configuration completed requests through the API, none failed; both verdicts
    scaling = sections[8]
    for name in ("in-process serve", "1 worker", "2 workers"):
        [row] = _rows(scaling, name)
        assert _number(row[1]) > 0 and _number(row[9]) > 0  # requests / s, CPU ms per request
        assert row[-1] == "0"  # failed or refused
    assert re.search(VERDICT.format("2 workers ≥ 1.7× one worker"), scaling)
    assert re.search(VERDICT.format("the best configuration ≥ 70% of the CPU bound"), scaling)

    # 9: Locust's whole requests, all done, each paid once
    load = sections[9]
    [refund] = _rows(load, "thread")
    assert refund[1:4] == ["refund", "12", "0"], refund
    assert re.search(r"\*\*Target \(all 12 requests done, 0 failures, each paid once\): met\*\*",
                     load), load


def test_quick_run_without_postgres_says_skipped(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "POSTGRES_URL" not in k}
    done = subprocess.run(
        [sys.executable, "-P", str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "3", "6",
         "--out", str(tmp_path)],
        cwd=tmp_path, env={**env, "MPLBACKEND": "Agg"}, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    assert "## 3. Throughput under concurrency on PostgreSQL\n\n_Skipped: no PostgreSQL._" in report
    assert "## 6. Storage" in report and "| SQLite |" in report and "| PostgreSQL |" not in report
