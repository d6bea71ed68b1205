"""The web console over real HTTP (uvicorn on a free port, SQLite; the user store also on
PostgreSQL): sign-in, forged and expired sessions, CSRF, roles, escaping, the body limit, and
two reviewers answering one approval at once."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from accord.engine.session import Session
from accord.graphs.support import SupportDB
from accord.records import AuditKind, ThreadStatus
from accord.server.auth import COOKIE, Role, Signer, User
from accord.server.console.store import ConsoleStore

REFUND = "I was charged twice for INV-1004. Please refund $150."
PASSWORD = "password-1"


def start_refund(db_url: str, thread_id: str) -> None:
    async def go() -> str:
        async with Session.open(db_url) as session:
            return (await session.run("support", REFUND, thread_id, lambda *_: None)).status

    assert asyncio.run(go()) == ThreadStatus.INTERRUPTED


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/signin").text
    csrf = re.search(r'name="csrf" value="([^"]*)"', form)[1]
    return client.post("/signin", data={"name": name, "password": password, "csrf": csrf})


def signed_in(base: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    reply = sign_in(client, name)
    assert reply.status_code == 303, reply.text
    return client


def form_of(client: httpx.Client, thread_id: str) -> dict[str, str]:
    """The hidden fields of the inbox form that answers ``thread_id``."""
    html = client.get("/inbox").text
    fields = dict(re.findall(r'name="(csrf|thread_id|fingerprint)" value="([^"]*)"', html))
    assert fields, html
    return {"csrf": fields["csrf"], "thread_id": thread_id, "fingerprint": fields["fingerprint"]}


def record(db_url: str, thread_id: str):
    async def go():
        async with Session.open(db_url) as session:
            return (await session.record(thread_id),
                    await session.saver._offload(session.saver.audit_log, thread_id))

    return asyncio.run(go())


def test_sign_in_forged_expired_and_token(console_server) -> None:
    base = console_server.url
    with httpx.Client(base_url=base) as anon:
        assert sign_in(anon, "alice", "nope").status_code == 401
        # the sign-in form is CSRF-checked too (double-submit cookie)
        assert anon.post("/signin", data={"name": "alice", "password": PASSWORD,
                                          "csrf": "guess"}).status_code == 403
    assert httpx.get(f"{base}/inbox").status_code == 401
    html = httpx.get(f"{base}/inbox", headers={"accept": "text/html"})
    assert html.status_code == 303 and html.headers["location"].endswith("/console/signin")
    client = signed_in(base, "alice")
    assert client.get("/inbox").status_code == 200
    cookie = client.cookies[COOKIE]
    # promote oneself: change the role part of the cookie, keep the signature
    name, _role, expires, nonce, mac = cookie.split(".")
    for forged in (f"{name}.admin.{expires}.{nonce}.{mac}", cookie[:-2] + "xx", "a.b.c.d.e"):
        assert httpx.get(f"{base}/inbox", cookies={COOKIE: forged}).status_code == 401
    store = ConsoleStore(console_server.db_url)
    expired = Signer(store.signing_secret()).session(User("alice", Role.APPROVER), seconds=-1)
    assert httpx.get(f"{base}/inbox", cookies={COOKIE: expired}).status_code == 401
    token = store.add_user("tess", Role.VIEWER, PASSWORD)
    store.close()
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/health", headers=auth).status_code == 200
    assert httpx.get(f"{base}/health", headers={"authorization": "Bearer acc_wrong"}
                     ).status_code == 401


def test_csrf_and_viewer_refused_and_recorded(console_server) -> None:
    start_refund(console_server.db_url, "t-csrf")
    alice, vera = signed_in(console_server.url, "alice"), signed_in(console_server.url, "vera")
    fields = form_of(alice, "t-csrf")
    missing = alice.post("/decide", data={**fields, "csrf": "", "decision": "approve"})
    foreign = alice.post("/decide", data={**fields, "csrf": form_of(vera, "t-csrf")["csrf"],
                                          "decision": "approve"})
    assert (missing.status_code, foreign.status_code) == (403, 403)
    viewer = vera.post("/decide", data={**form_of(vera, "t-csrf"), "decision": "approve"})
    assert viewer.status_code == 403 and "viewer" in viewer.text
    found, _ = record(console_server.db_url, "t-csrf")
    assert found.status is ThreadStatus.INTERRUPTED
    assert SupportDB().refunds("INV-1004") == []
    store = ConsoleStore(console_server.db_url)
    refused = [(e["user"], e["action"]) for e in store.entries() if not e["allowed"]]
    store.close()
    assert ("vera", "decide") in refused and ("alice", "decide") in refused


def test_markup_in_a_thread_id_is_escaped(console_server) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    start_refund(console_server.db_url, evil)
    client = signed_in(console_server.url, "alice")
    inbox = client.get("/inbox").text
    assert "<script>alert" not in inbox and "<img src=x" not in inbox
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in inbox
    replay = client.get("/threads/" + httpx.URL(path=evil).raw_path.decode())
    assert replay.status_code == 200 and "<script>alert" not in replay.text


def test_a_huge_form_is_refused_before_it_is_read(console_server) -> None:
    client = signed_in(console_server.url, "alice")
    big = {"csrf": "x", "message": "a" * (10 * 1024 * 1024)}
    assert client.post("/decide", data=big).status_code == 413

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(160):
            yield b"a" * 65536

    sent = client.post("/decide", content=chunks(),
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert sent.status_code == 413


def test_two_reviewers_at_once_exactly_one_wins(console_server) -> None:
    start_refund(console_server.db_url, "t-race")
    alice, bob = signed_in(console_server.url, "alice"), signed_in(console_server.url, "bob")
    forms = {"alice": form_of(alice, "t-race"), "bob": form_of(bob, "t-race")}

    async def answer(name: str) -> httpx.Response:
        client = {"alice": alice, "bob": bob}[name]
        async with httpx.AsyncClient(base_url=console_server.url, cookies=client.cookies,
                                     timeout=60) as ac:
            return await ac.post("/decide", data={**forms[name], "decision": "approve"})

    async def both() -> list[httpx.Response]:
        return await asyncio.gather(answer("alice"), answer("bob"))

    replies = dict(zip(("alice", "bob"), asyncio.run(both()), strict=True))
    codes = sorted(r.status_code for r in replies.values())
    assert codes == [303, 409], {k: (v.status_code, v.text[:300]) for k, v in replies.items()}
    winner = next(k for k, v in replies.items() if v.status_code == 303)
    loser = replies["bob" if winner == "alice" else "alice"]
    assert f'class="decided-by">{winner}<' in loser.text, loser.text[loser.text.find("<main>"):]
    found, audit = record(console_server.db_url, "t-race")
    assert found.status is ThreadStatus.DONE
    decisions = [e.details() for e in audit if e.kind is AuditKind.HUMAN_DECISION]
    assert [d["by"] for d in decisions] == [winner]
    assert [r["amount"] for r in SupportDB().refunds("INV-1004")] == [150.0]


def test_edit_reject_and_feedback_identity_from_the_session(console_server) -> None:
    start_refund(console_server.db_url, "t-edit")
    start_refund(console_server.db_url, "t-reject")
    alice = signed_in(console_server.url, "alice")
    edited = alice.post("/decide", data={**form_of(alice, "t-edit"), "decision": "edit",
                                         "a0.amount": "120", "by": "mallory"})
    assert edited.status_code == 303, edited.text
    rejected = alice.post("/decide", data={**form_of(alice, "t-reject"), "decision": "reject",
                                           "message": "not a duplicate"})
    assert rejected.status_code == 303, rejected.text
    assert [r["amount"] for r in SupportDB().refunds("INV-1004")] == [120.0]
    _, audit = record(console_server.db_url, "t-reject")
    decision = next(e.details() for e in audit if e.kind is AuditKind.HUMAN_DECISION)
    assert (decision["by"], decision["decision"]) == ("alice", "reject")
    _, audit = record(console_server.db_url, "t-edit")
    assert next(e.details()["by"] for e in audit if e.kind is AuditKind.HUMAN_DECISION) == "alice"
    csrf = form_of(alice, "t-edit")["csrf"] if False else re.search(
        r'name="csrf" value="([^"]*)"', alice.get("/threads/t-edit").text)[1]
    labelled = alice.post("/feedback", data={"csrf": csrf, "thread_id": "t-edit", "label": "good",
                                             "note": "right amount", "user": "mallory"})
    assert labelled.status_code == 303
    rows = [json.loads(line) for line in alice.get("/feedback.jsonl").text.splitlines()]
    assert [(r["user"], r["thread_id"], r["label"], r["note"]) for r in rows] == [
        ("alice", "t-edit", "good", "right amount")]
    health = alice.get("/health").text
    assert "billing_rules" in health and "<svg" in health


def test_store_on_postgres(pg_schema_url: str) -> None:
    store = ConsoleStore(pg_schema_url)
    assert not store.has_users()
    token = store.add_user("pat", Role.ADMIN, PASSWORD)
    try:
        assert store.has_users()
        assert store.authenticate("pat", PASSWORD) == User("pat", Role.ADMIN)
        assert store.authenticate("pat", "wrong-password") is None
        assert store.by_token(token) == User("pat", Role.ADMIN)
        assert store.signing_secret() == ConsoleStore(pg_schema_url).signing_secret()
        store.log("pat", "dlq:retry", "dl-1", True, "why")
        assert [(e["user"], e["allowed"]) for e in store.entries("dl-1")] == [("pat", 1)]
        stored = store._run("SELECT secret_hash, token_hash FROM accord_console_users")[0]
        assert PASSWORD not in stored[0] and token not in stored[1]
    finally:
        store.close()


def test_cli_adds_a_user(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/a.db"
    accord = [sys.executable, "-P", "-m", "accord.cli.main"]
    done = subprocess.run([*accord, "console-user", "add", "rita", "--role", "approver",
                           "--password-stdin", "--db", db], input="long-password\n",
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "API token" in done.stdout
    assert ConsoleStore(db).authenticate("rita", "long-password") == User("rita", Role.APPROVER)
    bad = subprocess.run([*accord, "console-user", "add", "x", "--role", "boss",
                          "--password-stdin", "--db", db], input="long-password\n",
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "unknown role" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture(autouse=True)
def _support_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))


def test_dead_letter_retry_needs_an_admin_and_a_reason(console_server) -> None:
    adam, alice = signed_in(console_server.url, "adam"), signed_in(console_server.url, "alice")

    def csrf(client: httpx.Client) -> str:
        return re.search(r'name="csrf" value="([^"]*)"', client.get("/letters").text)[1]

    form = {"letter_id": "dl-0000000000000000", "reason": "provider is back"}
    assert alice.post("/letters/retry", data={**form, "csrf": csrf(alice)}).status_code == 403
    assert adam.post("/letters/retry", data={**form, "csrf": csrf(adam), "reason": ""}
                     ).status_code == 400
    unknown = adam.post("/letters/retry", data={**form, "csrf": csrf(adam)})
    assert unknown.status_code == 409 and "dl-0000000000000000" in unknown.text
    store = ConsoleStore(console_server.db_url)
    tried = [(e["user"], e["allowed"]) for e in store.entries("dl-0000000000000000")]
    store.close()
    assert tried == [("alice", 0), ("adam", 0)]  # refused for her role, then unknown


def test_health_figures_from_agent_runs() -> None:
    from accord.records import AuditEvent
    from accord.server.console.health import collect, sparkline

    def run(at: str, outcome: str, version: str = "1.0.0") -> AuditEvent:
        return AuditEvent(kind=AuditKind.AGENT_RUN, at=at, agent="billing", version=version,
                          outcome=outcome)

    start = AuditEvent(kind=AuditKind.ROUTE, at="2026-01-01T00:00:00.000+00:00")
    log = [start, run("2026-01-01T00:00:01.000+00:00", "ok"),
           run("2026-01-01T00:00:04.000+00:00", "failed"),
           run("2026-01-01T00:00:05.000+00:00", "ok", "2.0.0")]
    rows = collect([log])
    old, new = rows[("billing", "1.0.0")], rows[("billing", "2.0.0")]
    assert (old.runs, old.errors, old.error_rate) == (2, 1, 0.5)
    assert (old.percentile(0.5), old.percentile(0.95)) == (1.0, 3.0)
    assert (new.runs, new.latencies) == (1, [1.0])
    assert sparkline(old.latencies).count("<rect") == 2 and sparkline([]) == ""


def test_a_notifications_link_opens_that_threads_inbox_item(console_server) -> None:
    start_refund(console_server.db_url, "t-link-1")
    start_refund(console_server.db_url, "t-link-2")
    client = signed_in(console_server.url, "alice")
    everything = client.get("/inbox").text
    assert "t-link-1" in everything and "t-link-2" in everything
    one = client.get("/inbox/t-link-2")
    assert one.status_code == 200
    assert "t-link-2" in one.text and "t-link-1" not in one.text
    assert 'name="fingerprint"' in one.text  # answerable from there
