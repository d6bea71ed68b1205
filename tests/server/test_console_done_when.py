"""The console as a new user meets it, in one flow: `accord serve` (a subprocess) with
notifications to a local webhook and a local SMTP server; a support run that needs approval
(a $150 refund on INV-1004, started through the runs API with an approver's token) notifies
both; Chromium signs in as an approver, opens the notification's link to the inbox item and
approves it; the thread finishes with the refund recorded once, and the pending-approvals
gauge on /metrics falls back to 0."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from accord.graphs.support.db import SupportDB
from accord.server.auth import Role
from accord.server.console.store import ConsoleStore

from .conftest import CONSOLE_PASSWORD, browser_sign_in, free_port

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


@pytest.mark.timeout(240)
def test_done_when(tmp_path, serve_accord, receiver, smtp, browser) -> None:
    sink, smtp_url = smtp
    store = ConsoleStore(f"sqlite:///{tmp_path}/accord.db")
    token = store.add_user("alice", Role.APPROVER, CONSOLE_PASSWORD)
    store.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve_accord(tmp_path, port=port, ACCORD_NOTIFY_WEBHOOK=receiver.url,
                      ACCORD_NOTIFY_SMTP=smtp_url, ACCORD_NOTIFY_EMAIL_TO="billing@example.test",
                      ACCORD_CONSOLE_URL=base, ACCORD_METRICS_REFRESH="0.5") as served:
        auth = {"authorization": f"Bearer {token}"}
        started = httpx.post(f"{base}/api/runs", headers=auth, timeout=30, json={
            "graph": "support", "input": REFUND, "thread_id": THREAD})
        assert started.status_code == 202, started.text

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
    refunds = SupportDB(tmp_path / "support.db").refunds("INV-1004")
    assert [r["amount"] for r in refunds] == [150.0], served.log.read_text()[-2000:]
