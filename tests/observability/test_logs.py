"""Log lines about runs: JSON lines from the CLI (``--log-json`` or ``ACCORD_LOG_JSON``), each
carrying the run's fields and its trace id; console lines in-process; no print in the library."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from pathlib import Path

from accord.checkpoints import open_saver
from accord.graphs.support import SupportDB, build_support
from accord.observability import configure_logging

REPO = Path(__file__).resolve().parents[2]
REFUND = "Please refund invoice INV-1002, I was charged twice"
ROOMS = ("agents", "checkpoints", "engine", "errors", "graphs", "guardrails", "observability",
         "records", "resilience", "server")


def json_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_cli_log_json_lines_carry_the_run(accord_cli):
    thread = f"log-{uuid.uuid4().hex[:8]}"
    paused = accord_cli("--log-json", "run", "support", REFUND, "--thread", thread,
                        "--no-input", "--json")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["status"] == "interrupted"  # stdout stays the command's
    lines = json_lines(paused.stderr)
    run_lines = [line for line in lines if line.get("logger") == "accord.run"]
    kinds = [line["kind"] for line in run_lines]
    assert kinds[0] == "run_started" and kinds[-1] == "run_ended"
    assert {"route", "agent_step"} <= set(kinds)
    trace_ids = {line["trace_id"] for line in run_lines}
    assert len(trace_ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", trace_ids.pop())
    assert all(line["thread_id"] == thread and line["run_id"] and line["graph"] == "support"
               for line in run_lines)
    step = next(line for line in run_lines if line["kind"] == "agent_step")
    assert (step["agent"], step["agent_version"], step["node"]) == ("billing_rules", "1.0.0",
                                                                     "billing")
    assert step["task_id"] and step["latency_ms"] > 0 and step["outcome"] == "ok"
    end = run_lines[-1]
    assert end["status"] == "interrupted" and end["latency_ms"] >= step["latency_ms"]
    assert {"tokens_in", "tokens_out", "timestamp", "level"} <= set(end)

    done = accord_cli("resume", thread, "--approve", "--by", "alice", "--json",
                      env={"ACCORD_LOG_JSON": "1"})
    assert done.returncode == 0, done.stderr
    resumed = [line for line in json_lines(done.stderr) if line.get("logger") == "accord.run"]
    human = next(line for line in resumed if line["kind"] == "human_decision")
    assert (human["decision"], human["by"], human["node"]) == ("approve", "alice",
                                                               "refund_approval")
    assert human["trace_id"] == end["trace_id"]  # the resume joins the paused run's trace
    assert resumed[-1]["status"] == "done" and resumed[-1]["run_kind"] == "resume"


def test_without_log_json_the_cli_writes_no_run_lines(accord_cli):
    result = accord_cli("run", "support", REFUND, "--no-input", "--json")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stderr) == []


def test_configure_logging_in_process_console_lines(tmp_path):
    stream = io.StringIO()
    handler = configure_logging(json=False, stream=stream)
    try:
        with open_saver("memory://") as saver:
            graph = build_support(db=SupportDB(tmp_path / "support.db")).compile(
                checkpointer=saver)
            graph.invoke({"messages": [{"role": "user", "content": "my invoice INV-1001"}]},
                         {"configurable": {"thread_id": "console-1"}})
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "run started" in text and "run done" in text
    assert "thread_id=console-1" in text and "trace_id=" in text


def test_no_print_in_library_code():
    offenders = [f"{path.relative_to(REPO)}:{n}" for room in ROOMS
                 for path in (REPO / room).rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.match(r"\s*print\(", line)]
    assert offenders == []
