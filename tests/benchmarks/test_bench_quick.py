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
)


def test_quick_run_writes_all_six_sections(tmp_path: Path, postgres_url: str) -> None:
    env = {**os.environ, "ACCORD_BENCH_POSTGRES_URL": postgres_url, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-P", str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    headings = re.findall(r"^## (\d)\. (.+)$", report, re.MULTILINE)
    assert headings == [(str(i), t) for i, t in enumerate(TITLES, 1)]
    assert "Skipped" not in report and "failed:" not in report
    for plot in re.findall(r"\]\(plots/([\w.]+\.png)\)", report):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
    assert len(list((tmp_path / "plots").glob("*.png"))) >= 6
    assert "Storage" in done.stdout and "report:" in done.stdout  # tables printed too


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
