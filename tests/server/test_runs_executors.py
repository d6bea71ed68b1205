"""The runs API's seams: the queue executor against an object of the worker queue's shape
(the real queue is tested with the workers), and the authentication hook, over real HTTP."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.checkpoints import open_saver
from accord.records import ThreadStatus
from accord.server.access import Forbidden, Role
from accord.server.executors import QueueExecutor, RunJob


def _helpers() -> Any:
    """``serving`` and ``wait_for`` of the runs API's tests."""
    path = Path(__file__).with_name("test_runs_api.py")
    spec = importlib.util.spec_from_file_location("accord_runs_api_helpers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


helpers = _helpers()


class FakeQueue:
    """The shape of ``accord.workers.queue.WorkerQueue``: it records what it was asked."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jobs: list[dict[str, Any]] = []
        self.open = False
        self.removable: set[str] = set()

    async def __aenter__(self) -> FakeQueue:
        self.open = True
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.open = False

    async def submit(self, *, graph: str, thread_id: str, payload: dict | None = None,
                     resume: Any = None, user: str | None = None) -> int:
        self.jobs.append({"graph": graph, "thread_id": thread_id, "payload": payload,
                          "resume": resume, "user": user})
        self.removable.add(thread_id)
        return len(self.jobs)

    async def cancel(self, thread_id: str) -> bool:
        if thread_id in self.removable:
            self.removable.discard(thread_id)
            return True
        return False


async def test_queue_executor_pending_until_a_worker_claims() -> None:
    queues: list[FakeQueue] = []

    def factory(url: str) -> FakeQueue:
        queues.append(FakeQueue(url))
        return queues[-1]

    executor = QueueExecutor("sqlite:///x.db", factory=factory)
    await executor.start()
    (queue,) = queues
    assert queue.open and queue.url == "sqlite:///x.db"
    await executor.submit(RunJob(graph="support", thread_id="t1", payload={"messages": []},
                                 user="u", epoch=2))
    assert queue.jobs == [{"graph": "support", "thread_id": "t1", "payload": {"messages": []},
                           "resume": None, "user": "u"}]

    class Record:
        epoch = 2

    assert executor.pending("t1", None) and executor.pending("t1", Record())
    Record.epoch = 3  # a worker claimed the thread
    assert not executor.pending("t1", Record())
    assert await executor.cancel("t1") is True
    assert await executor.cancel("t1") is False
    await executor.stop()
    assert not queue.open


@pytest.mark.timeout(120)
def test_the_api_on_the_workers_queue(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))
    url = f"sqlite:///{tmp_path}/accord.db"
    queues: list[FakeQueue] = []

    def to_queue(_session: Any, where: str) -> QueueExecutor:
        def factory(u: str) -> FakeQueue:
            queues.append(FakeQueue(u))
            return queues[-1]
        return QueueExecutor(where, factory=factory)

    with helpers.serving(url, executor=to_queue) as base:
        answer = httpx.post(f"{base}/api/runs", json={"graph": "support", "input": "hello",
                                                       "thread_id": "q1", "user": "C-1"})
        assert answer.status_code == 202
        (queue,) = queues
        assert queue.jobs[0]["payload"] == {"messages": [{"role": "user", "content": "hello"}]}
        assert (queue.jobs[0]["graph"], queue.jobs[0]["user"]) == ("support", "C-1")
        view = httpx.get(f"{base}/api/threads/q1").json()
        assert (view["status"], view["queued"]) == ("queued", True)
        twice = httpx.post(f"{base}/api/runs", json={"graph": "support", "input": "hello",
                                                      "thread_id": "q1"})
        assert twice.status_code == 409 and "queued work" in twice.json()["error"]
        dropped = httpx.post(f"{base}/api/threads/q1/cancel", json={"by": "ops", "reason": "r"})
        assert dropped.status_code == 200 and dropped.json()["stopped"] is True

        with open_saver(url) as saver:  # a thread a worker runs now
            saver.threads.upsert("busy", graph="support", status=ThreadStatus.RUNNING)
        refused = httpx.post(f"{base}/api/threads/busy/cancel", json={})
        assert refused.status_code == 409 and "worker" in refused.json()["error"]
    assert not queues[0].open


@pytest.mark.timeout(120)
def test_the_authentication_hook(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))
    seen: list[Role] = []

    async def authorize(request: Any, role: Role) -> str | None:
        seen.append(role)
        if role is Role.OPERATOR and request.headers.get("x-user") != "dana":
            raise Forbidden("operators only")
        return request.headers.get("x-user")

    with helpers.serving(f"sqlite:///{tmp_path}/accord.db", authorize=authorize) as base:
        body = {"graph": "support", "input": helpers.REQUEST, "thread_id": "a1"}
        assert httpx.post(f"{base}/api/runs", json=body).status_code == 403
        assert httpx.post(f"{base}/api/runs", json=body,
                          headers={"x-user": "dana"}).status_code == 202
        helpers.wait_for(base, "a1", {"interrupted"})
        cancelled = httpx.post(f"{base}/api/threads/a1/cancel", json={"reason": "dup"},
                               headers={"x-user": "dana"})
        assert cancelled.json()["error"] == "cancelled by dana: dup"
    assert Role.VIEWER in seen and Role.OPERATOR in seen
