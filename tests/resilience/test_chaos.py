"""`accord chaos`: a drill through real worker processes, on SQLite and PostgreSQL.

Workers are SIGKILLed mid-step and their threads continued by others, the model server (the
fault-injecting `OpenAICompatServer`, as `OPENAI_BASE_URL`) fails a share of requests, handoff
envelopes are stored corrupt (refused, dead-lettered, retried), latest checkpoints are damaged
in the database (replayed from the newest intact one), some approvals arrive corrupted first,
and on PostgreSQL the workers' sessions are terminated. The report is read from the databases:
every thread done or failed, none lost, no side effect twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from accord.checkpoints import CorruptCheckpoint
from accord.checkpoints.letters import LetterReason, LetterStatus
from accord.engine.session import Session
from accord.graphs.support.db import SupportDB
from accord.records import ThreadStatus
from accord.resilience import deadletters
from accord.testing.chaos_drill import damage_latest_checkpoint
from accord.testing.chaos_report import duplicate_side_effects, model_retries, percentile
from accord.testing.chaos_worker import DAMAGES, damaged_handoffs

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
             "--corrupt", "0.3", "--latency", "20ms", "--seed", "7"]
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
    # every corrupt handoff was refused into a dead letter and the letter retried to the end;
    # every damaged checkpoint was replayed past
    assert report["handoffs_damaged"] > 0
    assert report["dead_lettered"] >= report["handoffs_damaged"]
    assert report["letters_retried"] >= report["handoffs_damaged"]
    assert report["replays"] >= report["checkpoints_damaged"]


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


REFUND = "Please refund $120 of INV-1004, I was charged twice (case {tag})"
APPROVE = {"decision": "approve", "by": "test"}


def quiet(node, update) -> None:
    return None


def seeded(tmp_path, monkeypatch):
    """The sample company's database, seeded, for the support graph's tools."""
    support_db = tmp_path / "support.db"
    SupportDB(support_db).connect().close()
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(support_db))
    return support_db


def refunds_for(support_db, tag: str) -> int:
    with closing(sqlite3.connect(support_db)) as conn:
        return conn.execute("SELECT count(*) FROM refunds WHERE reason LIKE ?",
                            (f"%{tag}%",)).fetchone()[0]


async def test_a_damaged_latest_checkpoint_is_one_error_and_its_letter_retries_from_the_intact_one(
    tmp_path, drill_db, monkeypatch
):
    support_db = seeded(tmp_path, monkeypatch)
    async with Session.open(drill_db) as session:
        asked = await session.run("support", REFUND.format(tag="d-1"), "d-1", quiet)
        assert asked.status == "interrupted"
        ids = [cid for cid, _ in await session.saver._offload(session.saver.checkpoint_ids, "d-1")]
        assert await asyncio.to_thread(damage_latest_checkpoint, drill_db, "d-1") == ids[0]

        with pytest.raises(CorruptCheckpoint) as unreadable:
            await session.resume("d-1", APPROVE, quiet)
        assert "cannot be read" in str(unreadable.value)
        record = await session.record("d-1")  # failed with the cause; nothing saved is lost
        assert record.status is ThreadStatus.FAILED and "cannot be read" in record.error
        assert [cid for cid, _ in await session.saver._offload(
            session.saver.checkpoint_ids, "d-1")] == ids
        assert refunds_for(support_db, "d-1") == 0
        assert await session.newest_intact("d-1") == ids[1]

        (letter,) = await session.saver._offload(deadletters.letters, session.saver,
                                                 thread_id="d-1")
        assert letter.checkpoint_id == ids[0]
        again = await session.retry_letter(letter.id, quiet)  # from the intact one before it
        assert again.status == "interrupted" and again.interrupt, again.error
        done = await session.resume("d-1", APPROVE, quiet)
        assert done.status == "done", done.error
        retried = await session.saver._offload(deadletters.get, session.saver, letter.id)
        assert retried.status is LetterStatus.RETRIED
        # the damaged checkpoint stays in the thread's history: listing it is a typed error
        with pytest.raises(CorruptCheckpoint):
            await session.show("d-1")
    assert refunds_for(support_db, "d-1") == 1


@pytest.mark.parametrize("how", sorted(DAMAGES))
async def test_a_corrupt_handoff_is_refused_into_a_dead_letter_whose_retry_finishes(
    tmp_path, drill_db, monkeypatch, how
):
    support_db = seeded(tmp_path, monkeypatch)
    async with Session.open(drill_db) as session:
        with damaged_handoffs(how) as damaged:
            failed = await session.run("support", REFUND.format(tag="h-1"), "h-1", quiet)
        assert damaged, "the step stored no handoff"
        assert failed.status == "failed" and "handoff to" in failed.error
        letters = await session.saver._offload(deadletters.letters, session.saver,
                                               thread_id="h-1")
        assert [(x.status, x.node) for x in letters] == [(LetterStatus.DEAD, damaged[0])]
        expected = LetterReason.UNKNOWN_VERSION if how == "version" else LetterReason.CORRUPT
        assert letters[0].reason is expected
        assert letters[0].payload is not None  # the damaged envelope is kept (NUL and all)
        assert refunds_for(support_db, "h-1") == 0  # the refused agent never ran

        asked = await session.retry_letter(letters[0].id, quiet)  # issued afresh, undamaged
        assert asked.status == "interrupted", asked.error
        done = await session.resume("h-1", APPROVE, quiet)
        assert done.status == "done", done.error
        letter = await session.saver._offload(deadletters.get, session.saver, letters[0].id)
        assert letter.status is LetterStatus.RETRIED
    assert refunds_for(support_db, "h-1") == 1
