"""The console in a real browser (Playwright driving Debian's chromium): a viewer's approve is
refused, an approver approves the support example's refund, the thread finishes with one
refund, and the replay draws the visited path. Screenshots go to docs/img/console-*.png."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from accord.engine.session import Session
from accord.graphs.support import SupportDB
from accord.records import AuditKind, ThreadStatus

from .conftest import browser_sign_in as sign_in

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
REFUND = "I was charged twice for INV-1004. Please refund $150."
THREAD = "refund-1004"


def off_loop(coro):
    """Run ``coro`` on a loop of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_approve_in_the_browser(console_server, browser) -> None:
    async def start() -> str:
        async with Session.open(console_server.db_url) as session:
            return (await session.run("support", REFUND, THREAD, lambda *_: None)).status

    assert off_loop(start()) == ThreadStatus.INTERRUPTED
    base = console_server.url
    SHOTS.mkdir(parents=True, exist_ok=True)

    viewer = sign_in(browser, base, "vera")
    viewer.click(f"section[data-thread='{THREAD}'] button.approve")
    assert "needs approver" in viewer.content()
    assert SupportDB().refunds("INV-1004") == []

    page = sign_in(browser, base, "alice")
    item = page.locator(f"section[data-thread='{THREAD}']")
    assert "issue_refund" in item.inner_text() and "high" in item.inner_text()
    page.screenshot(path=str(SHOTS / "console-inbox.png"), full_page=True)
    item.locator("button.approve").click()
    page.wait_for_url(f"{base}/threads/{THREAD}")
    assert page.locator(".status").inner_text() == "done"
    assert "approved by alice" in page.locator(".reply").inner_text()
    page.wait_for_selector("body[data-graph-drawn=yes]", timeout=30_000)
    drawn = page.locator("#graph svg")
    assert drawn.count() == 1
    # the visited edges carry the highlight style, the visited nodes the class
    assert page.locator("#graph svg path[style*='stroke:#d1242f']").count() >= 3
    assert page.locator("#graph svg .visited").count() == 3
    page.screenshot(path=str(SHOTS / "console-replay.png"), full_page=True)
    assert [r["amount"] for r in SupportDB().refunds("INV-1004")] == [150.0]

    async def audit() -> list:
        async with Session.open(console_server.db_url) as session:
            return await session.saver._offload(session.saver.audit_log, THREAD)

    decisions = [e.details() for e in off_loop(audit()) if e.kind is AuditKind.HUMAN_DECISION]
    assert [(d["by"], d["decision"]) for d in decisions] == [("alice", "approve")]

    page.goto(f"{base}/inbox")
    assert page.locator(f"section[data-thread='{THREAD}']").count() == 0
    page.goto(f"{base}/health")
    assert "billing_rules" in page.locator("table.health").inner_text()
    page.screenshot(path=str(SHOTS / "console-health.png"), full_page=True)
