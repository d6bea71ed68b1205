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
