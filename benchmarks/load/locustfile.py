"""Locust users of accord's runs API: support requests that need an approval, answered.

Each user, in a loop: ``POST /api/runs`` a refund request on an invoice of its own (the
seeded load database has one per request, so no refund ever exceeds what is left), follows the
thread's Server-Sent Events until it stops, approves the pending refund with LangChain's
decision shape, follows the events again until the thread is done, and reads its status. The
whole request (submit to done) is reported as ``thread refund``; a thread that ends other than
``done`` is a failure with its status and error.

Bounded: ``ACCORD_LOAD_REQUESTS`` requests in all (per Locust process; ``ACCORD_LOAD_OFFSET``
shifts the invoice numbers), then the runner quits; ``--run-time`` bounds the time. Loopback
only: the host must be ``http://127.0.0.1:…``.
"""

from __future__ import annotations

import itertools
import json
import os
import time

import gevent
from locust import HttpUser, constant, events, task
from locust.exception import StopUser

REQUESTS = int(os.environ.get("ACCORD_LOAD_REQUESTS", "100"))
OFFSET = int(os.environ.get("ACCORD_LOAD_OFFSET", "2000"))
GRAPH = os.environ.get("ACCORD_LOAD_GRAPH", "support")
_numbers = itertools.count()
_finished = itertools.count(1)


@events.test_start.add_listener
def _loopback_only(environment, **_kwargs) -> None:
    host = environment.host or ""
    if not host.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise SystemExit(f"accord's load test runs against loopback only, not {host!r}")


def follow(client, thread_id: str) -> dict:
    """Read the thread's event stream to its ``end`` event; the last status it carried."""
    last: dict = {}
    with client.get(f"/api/threads/{thread_id}/events", stream=True, name="GET events",
                    timeout=300, catch_response=True) as response:
        event = None
        for raw in response.iter_lines():
            line = raw.decode() if isinstance(raw, bytes) else raw
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("status", "end"):
                last = json.loads(line[6:])
                if event == "end":
                    break
        response.success()
    return last


STOPPED = ("interrupted", "done", "failed")


def settle(client, thread_id: str, state: dict, timeout: float = 300.0) -> dict:
    """The thread's status once it stopped: ``state`` when the event stream ended on a stop,
    else read again (an event stream cut short by the network is read from the API)."""
    deadline = time.monotonic() + timeout
    while state.get("status") not in STOPPED and time.monotonic() < deadline:
        state = client.get(f"/api/threads/{thread_id}", name="GET thread").json()
        if state.get("status") not in STOPPED:
            gevent.sleep(0.05)
    return state


class SupportUser(HttpUser):
    """One customer after another asking for a refund that needs approval."""

    wait_time = constant(0)

    @task
    def refund(self) -> None:
        n = next(_numbers)
        if n >= REQUESTS:
            raise StopUser()
        invoice = f"INV-{OFFSET + n:04d}"
        started = time.perf_counter()
        submitted = self.client.post("/api/runs", name="POST /api/runs", json={
            "graph": GRAPH, "input": f"I was charged twice for {invoice}. Please refund $150."})
        if submitted.status_code != 202:
            return self._outcome(started, f"submit answered {submitted.status_code}")
        thread_id = submitted.json()["thread_id"]
        state = settle(self.client, thread_id, follow(self.client, thread_id))
        if state.get("status") == "interrupted":
            answered = self.client.post(f"/api/threads/{thread_id}/resume", name="POST resume",
                                        json={"decisions": [{"type": "approve"}], "by": "locust"})
            if answered.status_code != 202:
                return self._outcome(started, f"resume answered {answered.status_code}")
            settle(self.client, thread_id, follow(self.client, thread_id))
        status = self.client.get(f"/api/threads/{thread_id}", name="GET thread").json()
        problem = None if status.get("status") == "done" else (
            f"thread {thread_id} ended {status.get('status')}: {status.get('error')}")
        self._outcome(started, problem)

    def _outcome(self, started: float, problem: str | None) -> None:
        events.request.fire(request_type="thread", name="refund", context={},
                            response_time=(time.perf_counter() - started) * 1000,
                            response_length=0, response=None,
                            exception=RuntimeError(problem) if problem else None)
        if next(_finished) >= REQUESTS:
            # from a greenlet of its own: quit stops every user, this one too, midway
            gevent.spawn(self.environment.runner.quit)
