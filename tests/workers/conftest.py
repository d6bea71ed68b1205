"""Workers against a fresh PostgreSQL schema: real ``accord worker`` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from accord.workers.app import apply_schema

ACCORD = str(Path(sys.executable).with_name("accord"))
DEADLINE = 60.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    """:func:`wait_for`, for the tests."""
    return wait_for


@pytest.fixture
def accord_bin() -> str:
    """The ``accord`` command of this environment."""
    return ACCORD


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    lines: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events

    def saw(self, text: str) -> bool:
        return any(e.get("event", "").startswith(text) for e in self.events())


@pytest.fixture
def queue_url(pg_schema_url: str) -> str:
    """A fresh schema with the workers' queue set up."""
    assert apply_schema(pg_schema_url)
    return pg_schema_url


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ACCORD_"))}
    env.update(ACCORD_SUPPORT_DB=str(tmp_path / "support.db"), ACCORD_LOG_JSON="1",
               ACCORD_TEST_GATE=str(tmp_path / "gate"), PYTHONPATH="")
    (tmp_path / "gate").mkdir()
    return env


FAST = ["--heartbeat", "0.5", "--stalled-after", "3", "--chores-every", "1", "--grace", "10"]


@pytest.fixture
def spawn(tmp_path: Path, worker_env: dict[str, str]) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(url: str, *args: str) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        process = subprocess.Popen(
            [ACCORD, "worker", "--db", url, *FAST, *args], cwd=tmp_path, env=worker_env,
            stdout=subprocess.DEVNULL, stderr=log.open("w"))
        worker = Worker(process, log)
        started.append(worker)
        wait_for(lambda: worker.saw("worker ") or process.poll() is not None, "a worker start")
        assert process.poll() is None, log.read_text()
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in started:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
