"""Manual overrides in the console over real HTTP: reassign a waiting task to another declared
node (admin), cancel a thread (approver), fork one at a checkpoint (approver). Each needs its role (403 and recorded
otherwise) and a reason, and is recorded with who and why."""

from __future__ import annotations

import re

import httpx
import pytest

from accord.graphs.support import SupportDB
from accord.records import AuditKind, ThreadStatus
from accord.server.console.store import ConsoleStore

from .test_console import record, signed_in, start_refund


@pytest.fixture(autouse=True)
def _support_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))


def csrf_of(client: httpx.Client, thread_id: str) -> str:
    return re.search(r'name="csrf" value="([^"]*)"', client.get(f"/threads/{thread_id}").text)[1]


def log_of(db_url: str, target: str) -> list[tuple]:
    store = ConsoleStore(db_url)
    try:
        return [(e["user"], e["action"], bool(e["allowed"]), e["note"])
                for e in store.entries(target)]
    finally:
        store.close()


def test_reassign_a_waiting_task_to_another_declared_agent(console_server) -> None:
    db, thread = console_server.db_url, "t-reassign"
    start_refund(db, thread)
    vera, alice, adam = (signed_in(console_server.url, n) for n in ("vera", "alice", "adam"))
    form = {"thread_id": thread, "target": "account", "reason": "an account question"}
    assert vera.post("/reassign", data={**form, "csrf": csrf_of(vera, thread)}).status_code == 403
    assert alice.post("/reassign", data={**form, "csrf": csrf_of(alice, thread)}
                      ).status_code == 403
    page = adam.get(f"/threads/{thread}").text
    assert 'class="reassign"' in page and "<option>account</option>" in page
    assert "<option>billing</option>" not in page  # the task's own agent
    csrf = csrf_of(adam, thread)
    assert adam.post("/reassign", data={**form, "csrf": csrf, "reason": " "}).status_code == 400
    for target, says in (("refund_approval", "may hand a task to"),
                         ("nobody", "not a node of the graph"),
                         ("billing", "already assigned")):
        refused = adam.post("/reassign", data={**form, "csrf": csrf, "target": target})
        assert refused.status_code == 400 and says in refused.text, refused.text
    found, _ = record(db, thread)
    assert found.status is ThreadStatus.INTERRUPTED  # refusals change nothing
    moved = adam.post("/reassign", data={**form, "csrf": csrf})
    assert moved.status_code == 303, moved.text
    found, audit = record(db, thread)
    assert found.status is ThreadStatus.DONE
    override = [e.details() for e in audit
                if e.kind is AuditKind.ROUTE and e.details().get("tier") == "override"]
    assert [(o["target"], o["by"], o["reason"], o["previous"]) for o in override] == [
        ("account", "adam", "an account question", "billing")]
    assert "account" in [e.node for e in audit if e.kind is AuditKind.AGENT_RUN]
    assert SupportDB().refunds("INV-1004") == []  # the held refund never ran
    entries = log_of(db, thread)
    assert ("vera", "reassign", False) in [e[:3] for e in entries]
    assert ("alice", "reassign", False) in [e[:3] for e in entries]
    assert ("adam", "reassign:account", True, "an account question") in entries
    assert adam.post("/reassign", data={**form, "csrf": csrf}).status_code == 409  # finished


def test_cancel_a_waiting_thread(console_server) -> None:
    db, thread = console_server.db_url, "t-cancel"
    start_refund(db, thread)
    vera, alice = signed_in(console_server.url, "vera"), signed_in(console_server.url, "alice")
    form = {"thread_id": thread, "reason": "customer withdrew the request"}
    assert vera.post("/cancel", data={**form, "csrf": csrf_of(vera, thread)}).status_code == 403
    assert 'class="cancel"' not in vera.get(f"/threads/{thread}").text
    csrf = csrf_of(alice, thread)
    assert 'class="cancel"' in alice.get(f"/threads/{thread}").text
    assert alice.post("/cancel", data={**form, "csrf": csrf, "reason": ""}).status_code == 400
    assert alice.post("/cancel", data={**form, "csrf": csrf}).status_code == 303
    found, audit = record(db, thread)
    assert found.status is ThreadStatus.FAILED
    assert found.error == "cancelled by alice: customer withdrew the request"
    failed = [e.details() for e in audit if e.kind is AuditKind.RUN_FAILED]
    assert [(f["by"], f["reason"], f["cancelled"]) for f in failed] == [
        ("alice", "customer withdrew the request", True)]
    again = alice.post("/cancel", data={**form, "csrf": csrf})
    assert again.status_code == 409 and "nothing to cancel" in again.text
    missing = alice.post("/cancel", data={**form, "csrf": csrf, "thread_id": "no-such"})
    assert missing.status_code == 404
    assert [e[:3] for e in log_of(db, thread)] == [
        ("vera", "cancel", False), ("alice", "cancel", True), ("alice", "cancel", False)]
    assert SupportDB().refunds("INV-1004") == []


def test_fork_from_a_replay_step(console_server) -> None:
    db, thread = console_server.db_url, "t-fork"
    start_refund(db, thread)
    vera, alice = signed_in(console_server.url, "vera"), signed_in(console_server.url, "alice")
    assert 'class="fork"' not in vera.get(f"/threads/{thread}").text
    page = alice.get(f"/threads/{thread}").text
    checkpoints = re.findall(r'name="checkpoint_id" value="([^"]+)"', page)
    assert len(checkpoints) >= 3
    at = checkpoints[-1]  # the latest: waiting for the refund's approval
    form = {"thread_id": thread, "checkpoint_id": at}
    assert vera.post("/fork", data={**form, "csrf": csrf_of(vera, thread),
                                    "new_thread_id": "t-fork-v"}).status_code == 403
    csrf = csrf_of(alice, thread)
    bad = alice.post("/fork", data={**form, "csrf": csrf, "new_thread_id": "<b>x</b>"})
    assert bad.status_code == 400
    unknown = alice.post("/fork", data={**form, "csrf": csrf, "checkpoint_id": "nope",
                                        "new_thread_id": "t-fork-2"})
    assert unknown.status_code == 409 and "nope" in unknown.text
    forked = alice.post("/fork", data={**form, "csrf": csrf, "new_thread_id": "t-fork-2"})
    assert forked.status_code == 303 and forked.headers["location"].endswith("/threads/t-fork-2")
    copy = alice.get("/threads/t-fork-2")
    assert copy.status_code == 200 and "refund_approval" in copy.text
    again = alice.post("/fork", data={**form, "csrf": csrf, "new_thread_id": "t-fork-2"})
    assert again.status_code == 409 and "already exists" in again.text
    original, _ = record(db, thread)
    assert original.status is ThreadStatus.INTERRUPTED
    assert ("alice", "fork", True) in [e[:3] for e in log_of(db, thread)]


def test_reassign_a_failed_thread_to_the_human_team(console_server) -> None:
    db, thread = console_server.db_url, "t-failed"
    start_refund(db, thread)
    alice, adam = signed_in(console_server.url, "alice"), signed_in(console_server.url, "adam")
    assert alice.post("/cancel", data={"thread_id": thread, "reason": "stuck",
                                       "csrf": csrf_of(alice, thread)}).status_code == 303
    assert record(db, thread)[0].status is ThreadStatus.FAILED
    page = adam.get(f"/threads/{thread}").text
    assert 'class="reassign"' in page and 'class="cancel"' not in page
    moved = adam.post("/reassign", data={"thread_id": thread, "target": "human_triage",
                                         "reason": "a person should look",
                                         "csrf": csrf_of(adam, thread)})
    assert moved.status_code == 303, moved.text
    found, audit = record(db, thread)
    assert found.status is ThreadStatus.DONE
    assert [e.details()["reason"] for e in audit if e.kind is AuditKind.ESCALATED]
    assert SupportDB().refunds("INV-1004") == []


def dead_letter_of_a_refund(db_url: str, thread_id: str) -> str:
    """A dead letter: a support refund forked before billing with its handoff corrupted, then
    continued (billing refuses the envelope; the thread fails with a letter)."""
    import asyncio

    from accord.checkpoints.timetravel import fork, history
    from accord.engine.session import Session
    from accord.resilience import deadletters

    source = f"{thread_id}-source"
    start_refund(db_url, source)

    async def go() -> str:
        async with Session.open(db_url) as session:
            graph = session.graph("support")
            at = next(e.checkpoint_id for e in await history(graph, source)
                      if e.next == ("billing",))
            values = (await graph.aget_state({"configurable": {
                "thread_id": source, "checkpoint_id": at}})).values
            task = values["active_task"]
            envelope = {**values["tasks"][task]["handoffs"]["billing"], "priority": "urgent"}
            await fork(graph, source, at, thread_id,
                       {"tasks": {task: {"handoffs": {"billing": envelope}}}})
            outcome = await session.resume(thread_id, None, lambda *_: None)
            assert outcome.status == "failed", outcome
            [letter] = await session.saver._offload(deadletters.letters, session.saver,
                                                    status="dead")
            return letter.id

    return asyncio.run(go())


def test_retry_a_dead_letter_from_the_console(console_server) -> None:
    db = console_server.db_url
    letter = dead_letter_of_a_refund(db, "t-letter")
    adam = signed_in(console_server.url, "adam")
    listed = adam.get("/letters").text
    assert letter in listed and "t-letter" in listed
    csrf = re.search(r'name="csrf" value="([^"]*)"', listed)[1]
    retried = adam.post("/letters/retry", data={"csrf": csrf, "letter_id": letter,
                                                "reason": "the envelope was repaired"})
    assert retried.status_code == 303, retried.text
    found, _ = record(db, "t-letter")
    assert found.status is ThreadStatus.INTERRUPTED  # redelivered: billing asks for approval
    assert letter not in adam.get("/letters").text
    assert ("adam", "dlq:retry", True, "the envelope was repaired") in log_of(db, letter)
    again = adam.post("/letters/retry", data={"csrf": csrf, "letter_id": letter,
                                              "reason": "twice"})
    assert again.status_code == 409 and "retried" in again.text
