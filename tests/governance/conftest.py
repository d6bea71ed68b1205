"""Fixtures for the governance tests (versions, canaries, flags, retirement): databases of
every backend and the CLI in a subprocess, run from a folder holding ``flow.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

FLOW = Path(__file__).with_name("flow.py")


@pytest.fixture
def accord(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The `accord` CLI in a real subprocess, in a folder with ``flow.py``."""
    shutil.copy(FLOW, tmp_path / "flow.py")
    env = {**os.environ, "ACCORD_DB_URL": f"sqlite:///{tmp_path}/accord.db",
           "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"), "COLUMNS": "200", "NO_COLOR": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    return run
