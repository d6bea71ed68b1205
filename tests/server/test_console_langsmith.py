"""Feedback labels to a LangSmith dataset: langsmith's own Client against a local HTTP server
that answers as LangSmith does and records what it was sent (``LANGSMITH_ENDPOINT``)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accord.server.console.store import ConsoleStore

from .test_console import signed_in, start_refund


class LangSmithRecorder(ThreadingHTTPServer):
    """What a LangSmith API answers to dataset calls, with every request kept."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.datasets: dict[str, dict] = {}


class _Handler(BaseHTTPRequestHandler):
    server: LangSmithRecorder

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?")[0]
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        status, out = 200, {}
        if path == "/info":
            out = {"version": "0.10.0"}
        elif self.command == "GET" and path == "/datasets":
            name = re.search(r"name=([^&]+)", self.path)
            out = [d for d in self.server.datasets.values()
                   if name and d["name"] == name[1]]
        elif self.command == "POST" and path == "/datasets":
            sent = json.loads(body)
            out = {"id": str(uuid.uuid4()), "name": sent["name"], "data_type": "kv",
                   "created_at": "2026-01-01T00:00:00Z", "modified_at": "2026-01-01T00:00:00Z",
                   "tenant_id": str(uuid.uuid4()), "description": sent.get("description")}
            self.server.datasets[out["id"]] = out
        elif self.command == "POST" and path == "/examples/bulk":
            out = [{"id": e["id"]} for e in json.loads(body)]
        else:
            status = 404
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = _answer

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def langsmith(monkeypatch: pytest.MonkeyPatch) -> Iterator[LangSmithRecorder]:
    server = LangSmithRecorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_pt_local_test")
    monkeypatch.setenv("ACCORD_LANGSMITH_DATASET", "support-feedback")
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]*)"', client.get(path).text)[1]


def test_labels_go_to_a_langsmith_dataset(console_server, langsmith, monkeypatch) -> None:
    start_refund(console_server.db_url, "t-ls")
    alice, vera = signed_in(console_server.url, "alice"), signed_in(console_server.url, "vera")
    page = alice.get("/threads/t-ls").text
    assert 'class="langsmith"' in page
    csrf = _csrf(alice, "/threads/t-ls")
    assert alice.post("/feedback", data={"csrf": csrf, "thread_id": "t-ls", "label": "bad",
                                         "note": "should not need approval",
                                         "step": "billing"}).status_code == 303
    assert vera.post("/feedback/langsmith", data={"csrf": _csrf(vera, "/threads/t-ls")}
                     ).status_code == 403
    assert langsmith.requests == []
    done = alice.post("/feedback/langsmith", data={"csrf": csrf})
    assert done.status_code == 200 and "exported 1 labels" in done.text, done.text
    assert all(h.get("x-api-key") == "lsv2_pt_local_test" for _, _, h, _ in langsmith.requests)
    created = [json.loads(b) for m, p, _, b in langsmith.requests if (m, p) == ("POST", "/datasets")]
    assert [c["name"] for c in created] == ["support-feedback"]
    sent = [json.loads(b) for m, p, _, b in langsmith.requests
            if (m, p) == ("POST", "/examples/bulk")]
    assert len(sent) == 1 and len(sent[0]) == 1
    example = sent[0][0]
    assert example["dataset_id"] == next(iter(langsmith.datasets))
    assert example["inputs"]["thread_id"] == "t-ls" and example["inputs"]["step"] == "billing"
    assert "INV-1004" in example["inputs"]["request"]
    assert example["outputs"]["label"] == "bad"
    assert example["outputs"]["note"] == "should not need approval"
    assert example["metadata"]["labelled_by"] == "alice"
    # a second export reuses the dataset and sends the same example id
    assert alice.post("/feedback/langsmith", data={"csrf": csrf}).status_code == 200
    created = [1 for m, p, _, _ in langsmith.requests if (m, p) == ("POST", "/datasets")]
    again = [json.loads(b) for m, p, _, b in langsmith.requests
             if (m, p) == ("POST", "/examples/bulk")][-1]
    assert len(created) == 1 and again[0]["id"] == example["id"]
    store = ConsoleStore(console_server.db_url)
    log = [(e["user"], e["allowed"]) for e in store.entries("support-feedback")]
    store.close()
    assert log == [("alice", 1), ("alice", 1)]
    monkeypatch.delenv("LANGSMITH_API_KEY")
    before = len(langsmith.requests)
    off = alice.post("/feedback/langsmith", data={"csrf": csrf})
    assert off.status_code == 409 and "LANGSMITH_API_KEY" in off.text
    assert 'class="langsmith"' not in alice.get("/threads/t-ls").text
    assert len(langsmith.requests) == before
