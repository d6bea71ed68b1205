"""The `accord` CLI in real subprocesses: one process pauses a run for approval, another
approves it; on SQLite and on PostgreSQL. Plus `graph`, `agents`, `threads` and `show`."""

from __future__ import annotations

import json
import uuid

import pytest

from accord.graphs.support import SupportDB, build_support

REFUND = "Please refund invoice INV-1002, I was charged twice"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    return request.getfixturevalue("postgres_url")


def as_json(result) -> object:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_pause_in_one_process_approve_in_another(accord, db_url, tmp_path):
    thread = f"cli-{uuid.uuid4().hex[:10]}"
    sample = SupportDB(tmp_path / "support.db")

    paused = as_json(accord("run", "support", REFUND, "--thread", thread, "--db", db_url,
                            "--no-input", "--json"))
    assert (paused["thread_id"], paused["status"], paused["next"]) == (thread, "interrupted", ["refund_approval"])
    [action] = paused["interrupt"]["action_requests"]
    assert (action["name"], action["args"]["amount"]) == ("issue_refund", 480.0)
    assert paused["resume_hint"].startswith(f"accord resume {thread}")
    assert sample.refunds() == []

    waiting = as_json(accord("threads", "--status", "interrupted", "--limit", "1000", "--json", "--db", db_url))
    [mine] = [row for row in waiting if row["thread_id"] == thread]
    assert (mine["graph"], mine["status"], mine["pending"]["action_requests"][0]["name"]) == (
        "support", "interrupted", "issue_refund")

    done = as_json(accord("resume", thread, "--approve", "--by", "alice", "--json", "--db", db_url))
    assert (done["status"], done["interrupt"], done["next"]) == ("done", None, [])
    assert done["reply"].startswith("Refunded $480.00 on INV-1002")
    assert done["reply"].endswith("approved by alice.")
    assert [(r["invoice_id"], r["amount"]) for r in sample.refunds()] == [("INV-1002", 480.0)]

    waiting = as_json(accord("threads", "--status", "interrupted", "--limit", "1000", "--json", "--db", db_url))
    assert thread not in [row["thread_id"] for row in waiting]

    shown = as_json(accord("show", thread, "--json", "--db", db_url))
    [human] = [e for e in shown["audit"] if e["kind"] == "human_decision"]
    assert (human["decision"], human["by"]) == ("approve", "alice")
    assert [t["status"] for t in shown["tasks"].values()] == ["completed"]
    assert shown["status"] == "done" and len(shown["history"]) >= 5
    assert len(sample.refunds()) == 1


def test_graph_prints_every_transition(accord, tmp_path):
    result = accord("graph", "support")
    assert result.returncode == 0, result.stderr
    pairs = build_support(db=tmp_path / "support.db", use_llm=False).table.pairs()
    for src, dst in pairs:
        assert f"{src} -.-> {dst};" in result.stdout
    assert result.stdout.count("-.->") == len(pairs)
    assert "__start__ --> router;" in result.stdout


def test_agents_prints_the_responsibility_matrix(accord):
    result = accord("agents")
    assert result.returncode == 0, result.stderr
    assert "Responsibility matrix" in result.stdout
    for name in ("billing", "billing_rules", "tech", "tech_rules", "account", "account_rules",
                 "refunds", "invoices", "troubleshooting", "passwords", "accounts"):
        assert name in result.stdout
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 2}
    assert rows["refunds"].count("●") == 1 and rows["refunds"].count("○") == 1

    data = as_json(accord("agents", "--json"))
    assert data["owners"] == {"invoices": "billing", "refunds": "billing", "troubleshooting": "tech",
                              "accounts": "account", "passwords": "account"}
