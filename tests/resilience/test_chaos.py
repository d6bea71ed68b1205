"""`accord chaos`: a drill through real worker processes, on SQLite and PostgreSQL.

Workers are SIGKILLed mid-step and their threads continued by others, the model server (the
fault-injecting `OpenAICompatServer`, as `OPENAI_BASE_URL`) fails a share of requests, some
approvals arrive corrupted first, and on PostgreSQL the workers' sessions are terminated. The
report is read from the databases: every thread done or failed, none lost, no side effect twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from accord.testing.chaos_report import duplicate_side_effects, model_retries, percentile

RUNS = 12


def chaos(tmp_path, url: str, *flags: str) -> tuple[int, dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCORD_", "OPENAI_"))}
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "accord.cli.main", "chaos", "support", "--db", url,
         "--json", *flags],
        capture_output=True, text=True, cwd=tmp_path, env={**env, "COLUMNS": "200"},
        timeout=1200,
    )
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc.returncode, report, proc.stderr


@pytest.fixture(params=["sqlite", "postgres"])
def drill_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/chaos.db"
    return request.getfixturevalue("pg_schema_url")


@pytest.mark.timeout(1200)
def test_a_drill_with_kills_and_faults_loses_nothing_and_pays_nothing_twice(tmp_path, drill_db):
    flags = ["--runs", str(RUNS), "--concurrency", "3", "--kill-worker", "--error-rate", "0.2",
             "--corrupt", "0.05", "--latency", "20ms", "--seed", "7"]
    if drill_db.startswith("postgres"):
        flags.append("--db-drop")
    code, report, err = chaos(tmp_path, drill_db, *flags)
    assert report, err[-2000:]
    assert report["lost"] == 0, report["lost_threads"]
    assert report["duplicate_side_effects"] == 0, report["duplicates"]
    assert code == 0, err[-2000:]
    assert report["completed"] + report["failed"] == RUNS
    assert report["model_faults"] > 0 and report["model_requests"] > report["model_faults"]
    assert report["p95_s"] >= report["p50_s"] > 0


def test_the_support_agents_breakers_trip_when_the_provider_always_fails(tmp_path):
    code, report, err = chaos(tmp_path, f"sqlite:///{tmp_path}/chaos.db", "--runs", "10",
                              "--concurrency", "2", "--error-rate", "1.0", "--seed", "3")
    assert code == 0, err[-2000:]
    assert report["completed"] == 10 and report["lost"] == 0
    assert report["fallbacks"] >= 5  # every LLM agent call failed: the rule-based twin answered
    assert report["breaker_trips"] >= 1  # 5 failures within 60 s open the provider's breaker


def test_bad_options_are_one_line_and_exit_2(tmp_path):
    for flags, message in ((["--db-drop"], "--db-drop terminates PostgreSQL sessions"),
                           (["--latency", "soon"], "is not a duration"),
                           (["--error-rate", "2"], "--error-rate")):
        code, _, err = chaos(tmp_path, f"sqlite:///{tmp_path}/c.db", *flags)
        assert code == 2 and message in err and "Traceback" not in err, err


def test_the_report_counts_a_side_effect_made_twice(tmp_path):
    db = tmp_path / "support.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE refunds (reason TEXT, idempotency_key TEXT)")
        conn.execute("CREATE TABLE tickets (body TEXT, idempotency_key TEXT)")
        conn.executemany("INSERT INTO tickets VALUES (?, ?)", [
            ("broken (case r-0001)", "k1"), ("broken (case r-0001)", "k2"),
            ("manager (case r-0002)", "k3")])
        conn.execute("INSERT INTO refunds VALUES (?, ?)", ("refund (case r-0003)", "k4"))
    assert duplicate_side_effects(db, ["r-0001", "r-0002", "r-0003"]) == {"tickets:r-0001": 1}
    assert model_retries([{"a": 1}, {"a": 2}, {"a": 1}]) == 1
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
