"""Fixtures for the core tests (accord.graphs / accord.agents / the CLI): the sample support
database, fresh thread configs, a plain-node factory and the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from accord.graphs import Step
from accord.graphs.support import SupportDB


@pytest.fixture
def support_db(tmp_path) -> SupportDB:
    """A fresh copy of the support example's SQLite database."""
    return SupportDB(tmp_path / "support.db")


@pytest.fixture
def config() -> Callable[[], dict[str, Any]]:
    """A factory of run configs, each with a thread id no other test uses."""
    return lambda: {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}}


@pytest.fixture
def completes() -> Callable[[str], Callable[[dict[str, Any]], Step]]:
    """A plain node that completes the active task with a reply and returns to the router."""

    def make(name: str) -> Callable[[dict[str, Any]], Step]:
        def node(state: dict[str, Any]) -> Step:
            return Step("router", {
                "tasks": {state["active_task"]: {"status": "completed", "result": f"{name} done"}},
                "messages": [AIMessage(f"{name} done", name=name)],
            })

        return node

    return make



@pytest.fixture
def accord(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the `accord` CLI in a real subprocess, with the sample DBs and defaults under tmp_path."""
    env = {
        **os.environ,
        "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"),
        "ACCORD_DESK_DB": str(tmp_path / "desk.db"),
        "ACCORD_DB_URL": f"sqlite:///{tmp_path}/default.db",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-P", "-m", "accord.cli.main", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )

    return run
