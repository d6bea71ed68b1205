"""The console as a new user meets it, in one flow: `accord serve` (a subprocess) with
notifications to a local webhook and a local SMTP server, both processes exporting spans to a
local OTLP receiver; a support run that needs approval (a $150 refund on INV-1004, started
with `accord run` in a process of its own on the same database) notifies both; Chromium signs
in as an approver, opens the notification's link to the inbox item and approves it; the thread
finishes in the server with the refund recorded once, its trace spans both processes under one
trace id, and the pending-approvals gauge on /metrics falls back to 0."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from accord.graphs.support.db import SupportDB
from accord.server.auth import Role
from accord.server.console.store import ConsoleStore

from .conftest import ACCORD, CONSOLE_PASSWORD, browser_sign_in, free_port, serve_env

REFUND = "I was charged twice for INV-1004. Please refund $150."
THREAD = "refund-1004-done-when"


def pending_approvals(base: str) -> float:
    """The sum of ``accord_pending_approvals`` over graphs, from a real scrape."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "accord_pending_approvals" for sample in family.samples)


def until(check, what: str, timeout: float = 60.0):
    """``check()``'s value once it is truthy (polled; fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


@pytest.mark.timeout(300)
def test_done_when(tmp_path, serve_accord, receiver, smtp, browser, otlp_receiver) -> None:
    sink, smtp_url = smtp
    store = ConsoleStore(f"sqlite:///{tmp_path}/accord.db")
    token = store.add_user("alice", Role.APPROVER, CONSOLE_PASSWORD)
    store.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    notify = dict(ACCORD_NOTIFY_WEBHOOK=receiver.url, ACCORD_NOTIFY_SMTP=smtp_url,
                  ACCORD_NOTIFY_EMAIL_TO="billing@example.test", ACCORD_CONSOLE_URL=base)
    traced = dict(ACCORD_OTEL_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                  OTEL_BSP_SCHEDULE_DELAY="200")
    with serve_accord(tmp_path, port=port, ACCORD_METRICS_REFRESH="0.5", OTEL_SERVICE_NAME=
                      "accord-serve", **notify, **traced) as served:
        auth = {"authorization": f"Bearer {token}"}
        started = subprocess.run(
            [str(ACCORD), "run", "support", REFUND, "--thread", THREAD, "--no-input", "--json"],
            cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
            env=serve_env(tmp_path, ACCORD_DB_URL=served.db_url, OTEL_SERVICE_NAME="accord-cli",
                          **notify, **traced))
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["status"] == "interrupted"

        # both channels are told, each with the link to the inbox item
        link = f"{base}/console/inbox/{THREAD}"
        [hook] = receiver.wait_for(lambda bodies: len(bodies) >= 1, timeout=90)
        assert hook["text"].startswith("Approval needed: issue_refund") and link in hook["text"]
        [(recipients, mail)] = sink.wait_for(1, timeout=90)
        assert recipients == ["billing@example.test"]
        assert "issue_refund" in mail["Subject"] and link in mail.get_payload(decode=True
                                                                               ).decode()
        assert until(lambda: pending_approvals(base) == 1, "one pending approval")

        # an approver opens the link and approves in Chromium
        page = browser_sign_in(browser, f"{base}/console", "alice")
        page.goto(link)
        item = page.locator(f"section[data-thread='{THREAD}']")
        assert "issue_refund" in item.inner_text() and "INV-1004" in item.inner_text()
        item.locator("button.approve").click()
        page.wait_for_url(f"{base}/console/threads/{THREAD}", timeout=90_000)
        assert page.locator(".status").inner_text() == "done"
        assert "approved by alice" in page.locator(".reply").inner_text()

        view = httpx.get(f"{base}/api/threads/{THREAD}", headers=auth, timeout=30).json()
        assert view["status"] == "done"
        assert until(lambda: pending_approvals(base) == 0, "the gauge back to 0") is True
        assert len(receiver.bodies) == 1  # one wait, told once

        # one trace: the run that paused in the CLI, the resume the console made in the server
        def both_runs():
            runs = [s for s in otlp_receiver.named("accord.run")
                    if s.attributes.get("accord.thread_id") == THREAD]
            return runs if {s.service for s in runs} == {"accord-cli", "accord-serve"} else None
        runs = until(both_runs, "the run spans of both processes", timeout=60)
        paused = next(s for s in runs if s.service == "accord-cli")
        resumed = next(s for s in runs if s.service == "accord-serve")
        assert resumed.trace_id == paused.trace_id
        assert resumed.attributes["accord.run.kind"] == "resume"
        human = until(lambda: [s for s in otlp_receiver.named("accord.human_decision")
                               if s.trace_id == paused.trace_id], "the human decision's span")
        assert human[0].service == "accord-serve"
        assert human[0].attributes["accord.decision.by"] == "alice"
    refunds = SupportDB(tmp_path / "support.db").refunds("INV-1004")
    assert [r["amount"] for r in refunds] == [150.0], served.log.read_text()[-2000:]
