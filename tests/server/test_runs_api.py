"""The runs API over real HTTP (uvicorn on loopback, httpx): support requests on SQLite and
PostgreSQL run in the background, stop at the approval (seen by polling and by the event
stream), resume with LangChain's decisions and refund once; events resume after
``Last-Event-ID``; cancel; every bad input answers JSON with the right status."""


from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from accord.graphs.support.db import SupportDB
from accord.server.app import build_app

REQUEST = "Please refund invoice INV-1002, I was charged twice"
START_TIMEOUT = 60.0
SLOW = f"{Path(__file__).resolve().parents[1] / 'durability' / 'slowgraph.py'}:build"
"""A one-agent graph whose agent waits for a file the test writes."""
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(url: str, **options: Any) -> Iterator[str]:
    """Serve ``build_app(url, **options)`` on a free loopback port; yield its base URL."""
    app = build_app(url, refresh=3600, poll=0.05, **options)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"


@dataclass
class Event:
    """One Server-Sent Event as read off the wire."""

    event: str
    data: Any
    id: str | None = None


@dataclass
class Stream:
    events: list[Event] = field(default_factory=list)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.event == kind]


def read_events(base: str, thread_id: str, *, last_id: str | None = None,
                timeout: float = 60.0) -> Stream:
    """Read ``/api/threads/{id}/events`` until the server ends the stream."""
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    stream, fields = Stream(), {}
    with httpx.stream("GET", f"{base}/api/threads/{thread_id}/events", headers=headers,
                      timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if fields:
                    stream.events.append(Event(fields.get("event", "message"),
                                               json.loads(fields.get("data", "null")),
                                               fields.get("id")))
                fields = {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
    return stream


def wait_for(base: str, thread_id: str, statuses: set[str], timeout: float = 60.0,
             headers: dict[str, str] | None = None) -> dict:
    """Poll ``GET /api/threads/{id}`` until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        view = httpx.get(f"{base}/api/threads/{thread_id}", timeout=30, headers=headers).json()
        if view.get("status") in statuses and not view.get("queued"):
            return view
        assert time.monotonic() < deadline, f"thread still {view.get('status')}: {view}"
        time.sleep(0.02)


@pytest.fixture
def support_env(tmp_path, monkeypatch) -> SupportDB:
    path = tmp_path / "support.db"
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(path))
    return SupportDB(path)


def submit(base: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{base}/api/runs", json=body, timeout=30)


@pytest.mark.timeout(120)
def test_support_request_approval_and_one_refund(durable_url, support_env) -> None:
    with serving(durable_url) as base:
        answer = submit(base, graph="support", input=REQUEST)
        assert answer.status_code == 202, answer.text
        thread = answer.json()["thread_id"]
        assert answer.json()["status"] == "queued"

        stream = read_events(base, thread)  # ends at the approval
        assert stream.events[-1].event == "end"
        assert stream.events[-1].data == {"status": "interrupted"}
        statuses = [e.data["status"] for e in stream.of("status")]
        # the run may reach its approval before the stream's first read (a loaded machine)
        assert statuses[-1] == "interrupted", statuses
        assert set(statuses) <= {"queued", "running", "interrupted"}, statuses
        assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False)), statuses
        audit = stream.of("audit")
        assert [e.id for e in audit] == [str(n) for n in range(1, len(audit) + 1)]
        assert "route" in [e.data["kind"] for e in audit]

        view = wait_for(base, thread, {"interrupted"})
        pending = view["pending"]
        assert pending["type"] == "approval"
        assert [a["name"] for a in pending["action_requests"]] == ["issue_refund"]
        assert pending["review_configs"][0]["allowed_decisions"]
        assert view["values"]["messages"] >= 1
        assert support_env.refunds() == []

        resumed = httpx.post(f"{base}/api/threads/{thread}/resume",
                             json={"decisions": [{"type": "approve"}], "by": "bob"}, timeout=30)
        assert resumed.status_code == 202, resumed.text
        done = wait_for(base, thread, {"done", "failed"})
        assert done["status"] == "done", done
        assert [r["invoice_id"] for r in support_env.refunds()] == ["INV-1002"]
        assert done["values"]["reply"]

        again = httpx.post(f"{base}/api/threads/{thread}/resume",
                           json={"decisions": [{"type": "approve"}]}, timeout=30)
        assert again.status_code == 409
        assert "not waiting for a decision" in again.json()["error"]

        # the rest of the log, after the events already seen
        rest = read_events(base, thread, last_id=audit[-1].id)
        assert rest.events[-1].data == {"status": "done"}
        ids = [int(e.id) for e in rest.of("audit")]
        assert ids and ids[0] == int(audit[-1].id) + 1
        kinds = [e.data["kind"] for e in rest.of("audit")]
        assert "human_decision" in kinds and "tool_call" in kinds

        state = httpx.get(f"{base}/api/threads/{thread}/state", timeout=30).json()
        assert state["thread_id"] == thread and state["next"] == []
        json.dumps(state)
        assert state["values"]["messages"][0]["content"] == REQUEST
    assert [r["invoice_id"] for r in support_env.refunds()] == ["INV-1002"]


@pytest.mark.timeout(120)
def test_cancel_a_waiting_thread_records_who_and_why(tmp_path, support_env) -> None:
    with serving(f"sqlite:///{tmp_path}/accord.db") as base:
        thread = submit(base, graph="support", input=REQUEST, thread_id="t-cancel").json()[
            "thread_id"]
        assert thread == "t-cancel"
        wait_for(base, thread, {"interrupted"})
        answer = httpx.post(f"{base}/api/threads/{thread}/cancel",
                            json={"by": "carol", "reason": "customer withdrew"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "failed"
        view = httpx.get(f"{base}/api/threads/{thread}", timeout=30).json()
        assert view["status"] == "failed" and view["pending"] is None
        assert view["error"] == "cancelled by carol: customer withdrew"
        stream = read_events(base, thread)
        last = stream.of("audit")[-1].data
        assert (last["kind"], last["by"], last["reason"], last["cancelled"]) == (
            "run_failed", "carol", "customer withdrew", True)
        assert stream.events[-1].data == {"status": "failed"}
        twice = httpx.post(f"{base}/api/threads/{thread}/cancel", json={}, timeout=30)
        assert twice.status_code == 409 and "nothing to cancel" in twice.json()["error"]
        late = httpx.post(f"{base}/api/threads/{thread}/resume",
                          json={"decisions": [{"type": "approve"}]}, timeout=30)
        assert late.status_code == 409
    assert support_env.refunds() == []


@pytest.mark.timeout(120)
def test_cancel_in_flight_and_queued_runs(tmp_path, monkeypatch) -> None:
    from accord.server.executors import InProcessExecutor

    started, release = tmp_path / "started", tmp_path / "release"
    monkeypatch.setenv("SLOW_STARTED", str(started))
    monkeypatch.setenv("SLOW_RELEASE", str(release))
    one_at_a_time = lambda session, _url: InProcessExecutor(session, concurrency=1)  # noqa: E731
    with serving(f"sqlite:///{tmp_path}/accord.db", executor=one_at_a_time,
                 graphs={"slow": SLOW}) as base:
        try:
            first = submit(base, graph="slow", input="hello", thread_id="t-slow").json()
            second = submit(base, graph="slow", input="hello", thread_id="t-queued").json()
            deadline = time.monotonic() + 60
            while not started.exists():
                assert time.monotonic() < deadline, "the slow agent never started"
                time.sleep(0.02)
            queued = httpx.get(f"{base}/api/threads/{second['thread_id']}", timeout=30).json()
            assert queued["status"] == "queued" and queued["queued"] is True

            dropped = httpx.post(f"{base}/api/threads/t-queued/cancel",
                                 json={"reason": "not needed"}, timeout=30)
            assert dropped.status_code == 200, dropped.text
            assert dropped.json()["stopped"] is True
            view = httpx.get(f"{base}/api/threads/t-queued", timeout=30).json()
            assert (view["status"], view["error"]) == ("failed", "cancelled: not needed")

            stopped = httpx.post(f"{base}/api/threads/{first['thread_id']}/cancel",
                                 json={"by": "ops", "reason": "stuck"}, timeout=30)
            assert stopped.status_code == 200, stopped.text
            assert stopped.json() == {"thread_id": "t-slow", "status": "failed",
                                      "error": "cancelled by ops: stuck", "stopped": True}
            again = submit(base, graph="slow", input="hello", thread_id="t-slow")
            assert again.status_code == 409  # a failed thread is continued, not restarted
        finally:
            release.write_text("go")  # the cancelled agent's worker thread still waits


def test_bad_requests_answer_json(tmp_path, support_env) -> None:
    with serving(f"sqlite:///{tmp_path}/accord.db") as base:
        def post(path: str, content: bytes | str, **headers: str) -> httpx.Response:
            return httpx.post(f"{base}{path}", content=content, timeout=30,
                              headers={"content-type": "application/json", **headers})

        cases = [
            (post("/api/runs", b"{not json"), 400, "malformed JSON"),
            (post("/api/runs", b"[1, 2]"), 400, "must be a JSON object"),
            (submit(base, input="hi"), 400, "'graph'"),
            (submit(base, graph="nope", input="hi"), 404, "unknown graph"),
            (submit(base, graph="os:system", input="hi"), 404, "unknown graph"),
            (submit(base, graph="support", input=""), 400, "input is empty"),
            (submit(base, graph="support", input=3), 400, "'input' must be"),
            (submit(base, graph="support", input={"messages": []}), 400, "is empty"),
            (submit(base, graph="support", input={"msgs": []}), 400, "unknown key"),
            (submit(base, graph="support", input="hi", extra=1), 400, "unknown field"),
            (submit(base, graph="support", input="hi", thread_id="a/b"), 400, "'thread_id'"),
            (submit(base, graph="support", input="hi", user=""), 400, "'user'"),
            (submit(base, graph="support", input="x" * 20_000), 400, "guardrail"),
            (httpx.get(f"{base}/api/threads/missing", timeout=30), 404, "unknown thread"),
            (httpx.get(f"{base}/api/threads/missing/state", timeout=30), 404, "no saved state"),
            (httpx.get(f"{base}/api/threads/missing/events", timeout=30), 404, "unknown thread"),
            (post("/api/threads/missing/resume", '{"decisions": []}'), 404, "unknown thread"),
            (post("/api/threads/missing/resume", '{"yes": 1}'), 400, "unknown field"),
            (post("/api/threads/missing/resume", '{}'), 400, "'decisions'"),
            (post("/api/threads/missing/cancel", '{}'), 404, "unknown thread"),
        ]
        for response, status, text in cases:
            assert response.status_code == status, (response.request.content[:80], response.text)
            assert response.headers["content-type"] == "application/json"
            assert text in response.json()["error"], (text, response.json())

        thread = submit(base, graph="support", input=REQUEST).json()["thread_id"]
        wait_for(base, thread, {"interrupted"})
        busy = submit(base, graph="support", input="another one", thread_id=thread)
        assert busy.status_code == 409 and "waiting for a decision" in busy.json()["error"]
        for body, text in [({"decisions": [{"type": "approve"}] * 2}, "2 decision(s) for 1"),
                           ({"decisions": [{"type": "fly"}]}, "must be one of"),
                           ({"decisions": "approve"}, "must be a list"),
                           ({"decision": "reject"}, "a reject needs a reason")]:
            refused = httpx.post(f"{base}/api/threads/{thread}/resume", json=body, timeout=30)
            assert refused.status_code == 400, refused.text
            assert text in refused.json()["error"]
        bad_id = httpx.get(f"{base}/api/threads/{thread}/events",
                           headers={"Last-Event-ID": "abc"}, timeout=30)
        assert bad_id.status_code == 400
    assert support_env.refunds() == []


def _raw(base: str, head: str, body: bytes) -> tuple[bytes, float]:
    """Send a request's head and the start of its body on a socket; the response's first bytes
    and how long they took, with the rest of the body never sent."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        began = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data, time.monotonic() - began


def test_oversize_bodies_are_refused_before_they_are_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ACCORD_MAX_BODY", "1000")
    with serving(f"sqlite:///{tmp_path}/accord.db") as base:
        declared = (f"POST /api/runs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                    f"content-length: {50 * 1024 * 1024}\r\n\r\n")
        data, _ = _raw(base, declared, b'{"graph": "support", "input": "')  # 50 MB announced
        assert data.startswith(b"HTTP/1.1 413"), data[:200]

        chunked = ("POST /api/runs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                   "transfer-encoding: chunked\r\n\r\n")
        piece = b"x" * 600
        two_chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(2))
        data, _ = _raw(base, chunked, two_chunks)  # 1200 bytes sent, the end never comes
        assert data.startswith(b"HTTP/1.1 413"), data[:200]

        fits = httpx.post(f"{base}/api/runs", json={"graph": "support", "input": "hi" * 100},
                          timeout=30)
        assert fits.status_code == 202


def test_events_of_a_thread_another_process_runs(tmp_path, support_env) -> None:
    import asyncio

    from accord.engine.session import Session

    url = f"sqlite:///{tmp_path}/accord.db"

    async def elsewhere() -> str:
        async with Session.open(url) as session:  # its own saver, as the CLI or a worker has
            outcome = await session.run("support", REQUEST, "t-elsewhere", lambda *_: None)
            return outcome.status

    with serving(url) as base:
        assert asyncio.run(elsewhere()) == "interrupted"
        stream = read_events(base, "t-elsewhere")
        assert stream.events[-1].data == {"status": "interrupted"}
        assert stream.of("status")[0].data["pending"]["action_requests"][0]["name"] == (
            "issue_refund")
        assert [e.data["kind"] for e in stream.of("audit")][:2] == ["route", "transition"]


def test_a_claimed_resume_shows_running_before_its_first_step(tmp_path, support_env) -> None:
    """A worker that has claimed a waiting thread for a decision keeps the thread's waiting
    status until its first step is saved; the API shows it running meanwhile, so a client
    that follows it never takes the old approval for the new state."""
    import asyncio

    from accord.checkpoints.runs import RunKind, RunSpec
    from accord.checkpoints.savers import open_saver
    from accord.engine.session import Session

    url = f"sqlite:///{tmp_path}/accord.db"

    async def elsewhere() -> str:
        async with Session.open(url) as session:
            outcome = await session.run("support", REQUEST, "t-claimed", lambda *_: None)
            return outcome.status

    with serving(url) as base:
        assert asyncio.run(elsewhere()) == "interrupted"
        assert httpx.get(f"{base}/api/threads/t-claimed", timeout=30).json()["status"] == (
            "interrupted")
        with open_saver(url) as saver:  # another process's run, claimed, no step saved yet
            handle = saver.begin_run(RunSpec("t-claimed", RunKind.RESUME, graph="support"))
            assert saver.threads.get("t-claimed").status.value == "interrupted"
            view = httpx.get(f"{base}/api/threads/t-claimed", timeout=30).json()
            assert view["status"] == "running", view
            saver.end_run(handle)
        assert httpx.get(f"{base}/api/threads/t-claimed", timeout=30).json()["status"] == (
            "interrupted")
