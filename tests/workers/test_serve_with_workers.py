"""``accord serve --workers-queue`` with two ``accord worker`` processes on one PostgreSQL: the
runs API only queues, the workers run every thread, each approved refund is paid once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from accord.graphs.support import SupportDB

from .conftest import ACCORD, wait_for

REFUND = "I was charged twice for INV-1004. Please refund $150 (case {n})."
THREADS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(queue_url: str, tmp_path: Path, worker_env: dict[str, str]):
    port = free_port()
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [ACCORD, "serve", "--db", queue_url, "--port", str(port), "--workers-queue"],
        cwd=tmp_path, env=worker_env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{base}/metrics", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, "accord serve to answer")
    yield base, log
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def status(base: str, thread_id: str) -> dict:
    return httpx.get(f"{base}/api/threads/{thread_id}", timeout=30).json()


@pytest.mark.timeout(300)
def test_the_api_queues_and_two_workers_run_every_thread(server, spawn, queue_url,
                                                          tmp_path) -> None:
    base, _ = server
    workers = [spawn(queue_url, "--concurrency", "4"), spawn(queue_url, "--concurrency", "4")]
    threads = []
    for n in range(THREADS):
        reply = httpx.post(f"{base}/api/runs", timeout=30,
                           json={"graph": "support", "input": REFUND.format(n=n)})
        assert reply.status_code == 202, reply.text
        threads.append(reply.json()["thread_id"])

    for thread_id in threads:
        wait_for(lambda t=thread_id: status(base, t)["status"] == "interrupted",
                 f"{thread_id} to wait for its approval", timeout=120)
        pending = status(base, thread_id)["pending"]
        assert pending["action_requests"][0]["name"] == "issue_refund"
        answered = httpx.post(f"{base}/api/threads/{thread_id}/resume", timeout=30,
                              json={"decisions": [{"type": "approve"}], "by": "ana"})
        assert answered.status_code == 202, answered.text
    for thread_id in threads:
        wait_for(lambda t=thread_id: status(base, t)["status"] == "done", f"{thread_id} done",
                 timeout=120)

    refunds = SupportDB(tmp_path / "support.db").refunds("INV-1004")
    assert [r["amount"] for r in refunds] == [150.0] * THREADS  # each paid once
    logs = "".join(w.log.read_text() for w in workers)
    assert all(t in logs for t in threads)  # the workers ran every thread...
    assert "run started" in logs
    # ...and the server none: it counted no run of its own
    scraped = httpx.get(f"{base}/metrics", timeout=30).text
    runs = [line for line in scraped.splitlines() if line.startswith("accord_runs_total{")]
    assert runs == [], runs
