"""``accord serve`` as a real subprocess: it serves the runs API and /metrics on one port; an
unreachable database, a taken port or a missing worker queue is one line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .conftest import ACCORD, free_port, serve_env

REQUEST = "Please refund invoice INV-1002, I was charged twice"


def one_line_failure(args: list[str], tmp_path: Path) -> str:
    done = subprocess.run([str(ACCORD), "serve", *args], cwd=tmp_path, env=serve_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_unreachable_database_taken_port_and_missing_queue(tmp_path) -> None:
    line = one_line_failure(["--db", "postgresql://nobody@127.0.0.1:1/none", "--port",
                             str(free_port())], tmp_path)
    assert "database" in line.lower() or "connect" in line.lower(), line
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_failure(["--db", f"sqlite:///{tmp_path}/a.db", "--port", str(port)],
                                tmp_path)
    assert f"127.0.0.1:{port}" in line and "already in use" in line, line


def test_a_worker_queue_that_is_not_set_up_is_one_line(tmp_path, pg_schema_url) -> None:
    line = one_line_failure(["--db", pg_schema_url, "--port", str(free_port()),
                             "--workers-queue"], tmp_path)
    assert "accord worker --init" in line, line
    line = one_line_failure(["--db", f"sqlite:///{tmp_path}/a.db", "--port", str(free_port()),
                             "--workers-queue"], tmp_path)
    assert "postgres" in line.lower(), line


@pytest.mark.timeout(180)
def test_serve_runs_a_request_to_its_refund(tmp_path, serve_accord) -> None:
    with serve_accord(tmp_path) as served:
        base = served.url
        thread = httpx.post(f"{base}/api/runs", json={"graph": "support", "input": REQUEST},
                            timeout=30).json()["thread_id"]

        def wait(status: str) -> dict:
            deadline = time.monotonic() + 60
            while (view := httpx.get(f"{base}/api/threads/{thread}", timeout=30).json())[
                    "status"] != status or view["queued"]:
                assert time.monotonic() < deadline, view
                time.sleep(0.05)
            return view

        assert wait("interrupted")["pending"]["action_requests"][0]["name"] == "issue_refund"
        assert "accord_pending_approvals" in httpx.get(f"{base}/metrics", timeout=30).text
        answer = httpx.post(f"{base}/api/threads/{thread}/resume",
                            json={"decisions": [{"type": "approve"}]}, timeout=30)
        assert answer.status_code == 202
        assert wait("done")["values"]["reply"]
    from accord.graphs.support.db import SupportDB

    assert [r["invoice_id"] for r in SupportDB(tmp_path / "support.db").refunds()] == [
        "INV-1002"]
