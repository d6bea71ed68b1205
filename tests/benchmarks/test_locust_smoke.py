"""A small Locust run of ``benchmarks/load/locustfile.py`` against a real ``accord serve``: every
refund is approved through the runs API and ends done, paid once."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from accord.graphs.support import SupportDB

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REQUESTS = 24


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(400)
def test_a_bounded_locust_run_through_the_runs_api_has_no_failures(tmp_path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.load.seed import seed_invoices
    finally:
        sys.path.remove(str(ROOT))
    support = tmp_path / "support.db"
    seed_invoices(support, 2000, REQUESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ACCORD_"))}
    env.update(ACCORD_SUPPORT_DB=str(support), ACCORD_LOAD_REQUESTS=str(REQUESTS),
               ACCORD_LOAD_OFFSET="2000")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen([str(BIN / "accord"), "serve", "--db",
                              f"sqlite:///{tmp_path}/accord.db", "--port", str(port)],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=(tmp_path / "serve.log").open("w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/metrics", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "accord serve did not start"
            time.sleep(0.05)
        done = subprocess.run(
            [str(BIN / "locust"), "-f", str(ROOT / "benchmarks/load/locustfile.py"), "--headless",
             "-u", "4", "-r", "4", "--run-time", "300s", "--host", base, "--only-summary"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=360)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stdout + done.stderr  # the final table (the CSV is written before the end)
    [(count, failures)] = re.findall(r"^thread\s+refund\s+(\d+)\s+(\d+)\(", summary, re.M)
    assert (int(count), int(failures)) == (REQUESTS, 0), summary[-3000:]
    [total_failures] = re.findall(r"^\s+Aggregated\s+\d+\s+(\d+)\(", summary, re.M)[:1]
    assert int(total_failures) == 0, summary[-3000:]
    refunds = SupportDB(support).refunds()
    assert len(refunds) == REQUESTS  # one per approved request
    assert len({r["invoice_id"] for r in refunds}) == REQUESTS
