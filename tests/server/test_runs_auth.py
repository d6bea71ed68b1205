"""The runs API honours the console's users and tokens once any user exists: a viewer's token
reads but cannot run, resume or cancel (403, recorded), an approver's can, and the decider is
the token's user whatever the body says; with no users the API stays open."""

from __future__ import annotations

import httpx
import pytest

from accord.records import AuditKind
from accord.server.auth import Role
from accord.server.console.store import ConsoleStore

from .test_console import record
from .test_runs_api import REQUEST, serving, wait_for


@pytest.mark.timeout(120)
def test_tokens_and_roles_on_the_runs_api(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))
    db = f"sqlite:///{tmp_path}/accord.db"
    store = ConsoleStore(db)
    viewer = {"authorization": f"Bearer {store.add_user('vic', Role.VIEWER, 'pw-123456')}"}
    approver = {"authorization": f"Bearer {store.add_user('ana', Role.APPROVER, 'pw-123456')}"}
    store.close()
    with serving(db) as base:
        body = {"graph": "support", "input": REQUEST, "thread_id": "r1"}
        assert httpx.post(f"{base}/api/runs", json=body).status_code == 401
        wrong = httpx.post(f"{base}/api/runs", json=body,
                           headers={"authorization": "Bearer acc_forged"})
        assert wrong.status_code == 401 and "token" in wrong.json()["error"]
        refused = httpx.post(f"{base}/api/runs", json=body, headers=viewer)
        assert refused.status_code == 403 and "viewer" in refused.json()["error"]
        assert httpx.post(f"{base}/api/runs", json=body, headers=approver).status_code == 202
        waiting = wait_for(base, "r1", {"interrupted"}, headers=viewer)
        assert waiting["pending"]["action_requests"][0]["name"] == "issue_refund"
        decide = {"decisions": [{"type": "approve"}], "by": "mallory"}
        for path in ("resume", "cancel"):
            answer = httpx.post(f"{base}/api/threads/r1/{path}", headers=viewer,
                                json=decide if path == "resume" else {"reason": "no"})
            assert answer.status_code == 403, answer.text
        assert httpx.post(f"{base}/api/threads/r1/resume", json=decide,
                          headers=approver).status_code == 202
        wait_for(base, "r1", {"done"}, headers=approver)
    _, audit = record(db, "r1")
    assert [e.details()["by"] for e in audit if e.kind is AuditKind.HUMAN_DECISION] == ["ana"]
    store = ConsoleStore(db)
    refusals = [(e["user"], e["action"]) for e in store.entries() if not e["allowed"]]
    store.close()
    assert (None, "api:POST /api/runs") in refusals
    assert ("vic", "api:POST /api/threads/r1/resume") in refusals
    assert ("vic", "api:POST /api/threads/r1/cancel") in refusals
