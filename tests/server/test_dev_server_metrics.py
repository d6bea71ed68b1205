"""`/metrics` of a real `langgraph dev`: accord's metrics in Prometheus' text format, scraped
with a real HTTP client and parsed with prometheus_client's parser; the pending-approvals gauge
(read from the thread index) goes to 1 at the approval and back to 0 once it is answered. The
server's log lines about runs are JSON (``LOG_JSON=true``) and carry the run's fields."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

REQUEST = "Please refund invoice INV-1002, I was charged twice"


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.mark.timeout(400)
async def test_dev_server_metrics_and_pending_approvals(serve, tmp_path: Path) -> None:
    env = {"ACCORD_DB_URL": f"sqlite:///{tmp_path}/accord.db",
           "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"), "LOG_JSON": "true"}
    with serve(tmp_path / "server", env) as server:
        before = scrape(server.url)
        assert value(before, "accord_pending_approvals", graph="") == 0

        async with get_client(url=server.url) as client:
            thread = (await client.threads.create())["thread_id"]
            await client.runs.wait(thread, "support", input={"messages": [
                {"role": "user", "content": REQUEST}]})
            waiting = scrape(server.url)
            assert value(waiting, "accord_pending_approvals", graph="support") == 1
            assert value(waiting, "accord_pending_approval_age_seconds", graph="support") >= 0
            assert value(waiting, "accord_runs_total", graph="support", kind="new",
                         status="interrupted") == 1
            assert value(waiting, "accord_agent_step_duration_seconds_count",
                         agent="billing_rules", version="1.0.0", outcome="ok") == 1
            assert value(waiting, "accord_routes_total", tier="rule", target="billing") == 1
            assert value(waiting, "accord_thread_lock_wait_seconds_count", graph="support") == 1
            assert value(waiting, "accord_checkpoint_write_seconds_count", backend="sqlite") >= 1

            await client.runs.wait(thread, "support", command={"resume": {
                "decision": "approve", "by": "studio-user"}})
        after = scrape(server.url)
        assert value(after, "accord_pending_approvals", graph="") == 0
        assert value(after, "accord_runs_total", graph="support", kind="resume",
                     status="done") == 1
        assert value(after, "accord_human_decisions_total", decision="approve") == 1

        lines = [json.loads(line) for line in server.log.read_text().splitlines()
                 if line.startswith("{")]
        # the server's renderer keeps a line's own kind as its "event"
        runs = [line for line in lines if line.get("logger") == "accord.run"]
        ended = [line for line in runs if line.get("event") == "run_ended"]
        assert [line["status"] for line in ended] == ["interrupted", "done"]
        assert all(line["thread_id"] == thread for line in runs)
        # every line of both runs (router, agent step, tool call, decision) is in one trace,
        # although the server reads each chunk of a run from a task of its own
        assert {line["event"] for line in runs} >= {"run_started", "route", "agent_step",
                                                    "tool_call", "human_decision"}
        assert len({line["trace_id"] for line in runs}) == 1
        step = next(line for line in runs if line["event"] == "agent_step")
        assert (step["agent"], step["agent_version"], step["graph"]) == (
            "billing_rules", "1.0.0", "support")
