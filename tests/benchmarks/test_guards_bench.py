"""Smoke test of ``benchmarks/guards.py``: it prints precision and recall per guard and exits 0
when every target is met."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_guard_benchmark_prints_a_row_per_guard():
    result = subprocess.run([sys.executable, "-P", str(ROOT / "benchmarks" / "guards.py")],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={"COLUMNS": "160", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    for guard in ("pii", "prompt_injection", "off_topic"):
        assert guard in result.stdout
    assert "precision" in result.stdout and "recall" in result.stdout and " NO " not in result.stdout
