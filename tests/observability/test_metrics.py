"""accord's Prometheus metrics: counted from real runs (a failing provider retried, then the
fallback; an LLM agent's tokens), served by `accord metrics-serve` and scraped over HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from accord.agents import ModelResolver
from accord.checkpoints import open_saver
from accord.checkpoints.threads import ThreadRecord
from accord.graphs.support import SupportDB, build_support
from accord.observability import PendingApprovals
from accord.records import ThreadStatus
from accord.testing import ScriptedChatModel, StructuredReply, ToolCallReply

REFUND = "Please refund invoice INV-1002, I was charged twice"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_retries_fallback_and_errors_are_counted(tmp_path):
    model = ScriptedChatModel([TimeoutError("provider too slow")] * 10)
    workflow = build_support(db=SupportDB(tmp_path / "support.db"), use_llm=True,
                             models=ModelResolver(models={"*": model}))
    spec = workflow.registry.get("tech")
    before = {
        "retries": sample("accord_model_retries_total", agent="tech"),
        "fallbacks": sample("accord_fallbacks_total", agent="tech", fallback="tech_rules"),
        "errors": sample("accord_agent_errors_total", agent="tech", version=spec.version,
                         error="TimeoutError"),
        "steps": sample("accord_agent_step_duration_seconds_count", agent="tech",
                        version=spec.version, outcome="fallback"),
        "failed_calls": sample("accord_model_calls_total", agent="tech", model=model_name(model),
                               outcome="error"),
    }
    with open_saver("memory://") as saver:
        graph = workflow.compile(checkpointer=saver)
        out = graph.invoke({"messages": [{"role": "user", "content": "my app crashes on start"}]},
                           {"configurable": {"thread_id": f"m-{uuid.uuid4().hex}"}})
    assert out["outputs"]["tech"]["agent"] == "tech_rules"  # the fallback answered
    attempts = model.calls
    assert attempts == spec.retry.max_attempts > 1
    assert sample("accord_model_retries_total", agent="tech") - before["retries"] == attempts - 1
    assert sample("accord_fallbacks_total", agent="tech", fallback="tech_rules") \
        - before["fallbacks"] == 1
    assert sample("accord_agent_errors_total", agent="tech", version=spec.version,
                  error="TimeoutError") - before["errors"] == 1
    assert sample("accord_agent_step_duration_seconds_count", agent="tech", version=spec.version,
                  outcome="fallback") - before["steps"] == 1
    assert sample("accord_model_calls_total", agent="tech", model=model_name(model),
                  outcome="error") - before["failed_calls"] == attempts


def model_name(model: ScriptedChatModel) -> str:
    return str(model._get_ls_params().get("ls_model_name") or type(model).__name__)


def test_tokens_are_counted_per_agent(tmp_path):
    model = ScriptedChatModel([
        StructuredReply({"target": "billing", "confidence": 0.9, "reason": "money"}),
        ToolCallReply("get_invoice", {"invoice_id": "INV-1002"}),
        "INV-1002 is paid.",
    ])
    workflow = build_support(db=SupportDB(tmp_path / "support.db"), use_llm=True,
                             models=ModelResolver(models={"*": model}))
    name = model_name(model)
    before = {who: sample("accord_tokens_total", agent=who, model=name, direction="input")
              for who in ("router", "billing")}
    tools = sample("accord_tool_calls_total", agent="billing", tool="get_invoice", outcome="ok")
    with open_saver("memory://") as saver:
        graph = workflow.compile(checkpointer=saver)
        graph.invoke({"messages": [{"role": "user", "content": "I was billed twice last month"}]},
                     {"configurable": {"thread_id": f"k-{uuid.uuid4().hex}"}})
    for who in ("router", "billing"):
        assert sample("accord_tokens_total", agent=who, model=name, direction="input") \
            > before[who]
    assert sample("accord_tool_calls_total", agent="billing", tool="get_invoice",
                  outcome="ok") - tools == 1


def test_pending_approvals_snapshot_and_age():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    pending = PendingApprovals(clock=lambda: now)
    record = ThreadRecord("a", "support", ThreadStatus.INTERRUPTED, now, now - timedelta(seconds=90))
    pending.replace([record])
    families = {f.name: f for f in pending.collect()}
    assert [(s.labels, s.value) for s in families["accord_pending_approvals"].samples] == [
        ({"graph": "support"}, 1)]
    assert families["accord_pending_approval_age_seconds"].samples[0].value == 90
    pending.note("a", "support", "done")
    assert [s.value for s in next(iter(pending.collect())).samples] == [0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(300)
def test_metrics_serve_scraped_over_http(accord_cli, tmp_path):
    db = f"sqlite:///{tmp_path}/accord.db"
    thread = f"ms-{uuid.uuid4().hex[:8]}"
    paused = accord_cli("run", "support", REFUND, "--thread", thread, "--db", db, "--no-input",
                        "--json")
    assert json.loads(paused.stdout)["status"] == "interrupted", paused.stderr
    port = free_port()
    log = (tmp_path / "metrics-serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-P", "-m", "accord.cli.main", "metrics-serve",
                             "--db", db, "--port", str(port)], cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:  # until the server answers (or exits, or the deadline passes)
            assert proc.poll() is None, (tmp_path / "metrics-serve.log").read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "accord metrics-serve never answered"
                time.sleep(0.2)
        assert response.status_code == 200
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(response.text)
                   for s in family.samples}
        assert samples[("accord_pending_approvals", (("graph", "support"),))] == 1
        assert samples[("accord_pending_approval_age_seconds", (("graph", "support"),))] >= 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_metrics_serve_on_a_bad_database_is_one_line(accord_cli):
    result = accord_cli("metrics-serve", "--db", "mysql://nowhere/db")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
