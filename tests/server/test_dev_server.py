"""`langgraph dev` serves langgraph.json offline, with checkpoints in accord's database.

A real server subprocess, driven through langgraph-sdk as Studio drives it: a refund above the
threshold stops at the approval interrupt, the server is restarted, and the refund is approved
on the new server. The pending interrupt can only survive the restart through accord's saver
(the in-memory server's own checkpoint pickles stay empty), and the refund happens once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.constants import START
from langgraph_sdk import get_client

from accord.checkpoints import open_saver
from accord.graphs.support import SupportDB, build_support

REQUEST = "Please refund invoice INV-1002, I was charged twice"
APPROVE = {"decision": "approve", "by": "studio-user"}


def expected_drawing(support_db: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """The nodes and edges of the declared transition table, plus START -> router."""
    pairs = build_support(db=SupportDB(support_db)).table.pairs()
    edges = {*pairs, (START, "router")}
    return {node for edge in edges for node in edge}, edges


def interrupts_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Interrupt values from `threads.get_state`: top-level `interrupts`, else per task."""
    found = state.get("interrupts") or [i for task in state["tasks"] for i in task["interrupts"]]
    return [item["value"] for item in found]


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


async def start_and_check(url: str, support_db: Path) -> str:
    """First server: graphs listed, drawing exact, run stops at the approval. Returns the thread."""
    async with get_client(url=url) as client:
        assistants = await client.assistants.search(limit=100)
        by_graph = {a["graph_id"]: a for a in assistants}
        assert "support" in by_graph

        drawing = await client.assistants.get_graph(by_graph["support"]["assistant_id"])
        nodes, edges = expected_drawing(support_db)
        assert {n["id"] for n in drawing["nodes"]} == nodes
        drawn = [(e["source"], e["target"]) for e in drawing["edges"]]
        assert len(drawn) == len(set(drawn)) and set(drawn) == edges

        thread = await client.threads.create()
        thread_id = thread["thread_id"]
        await client.runs.wait(
            thread_id, "support", input={"messages": [{"role": "user", "content": REQUEST}]}
        )
        state = await client.threads.get_state(thread_id)
        assert state["next"] == ["refund_approval"]
        (payload,) = interrupts_of(state)
        assert payload["type"] == "approval"
        assert payload["approval_node"] == "refund_approval"
        [action] = payload["action_requests"]
        assert action["name"] == "issue_refund"
        assert action["args"]["invoice_id"] == "INV-1002"
        assert action["args"]["amount"] == 480
        assert payload["review_configs"][0]["action_name"] == "issue_refund"
        assert payload["error"] is None
        return thread_id


async def resume_and_check(url: str, thread_id: str) -> None:
    """Second server: the interrupt is still there; approving it finishes the run."""
    async with get_client(url=url) as client:
        state = await client.threads.get_state(thread_id)
        assert state["next"] == ["refund_approval"]
        assert [[a["name"] for a in p["action_requests"]] for p in interrupts_of(state)] == [
            ["issue_refund"]]

        result = await client.runs.wait(thread_id, "support", command={"resume": APPROVE})
        assert "approved by studio-user" in text_of(result["messages"][-1])
        state = await client.threads.get_state(thread_id)
        assert state["next"] == [] and interrupts_of(state) == []
        assert state["values"]["pending"] is None


def assert_in_accord_db(db_url: str, thread_id: str, *, finished: bool) -> None:
    """The thread's checkpoints are in accord's database, written by the server's runs."""
    config = {"configurable": {"thread_id": thread_id}}
    with open_saver(db_url) as saver:
        checkpoints = list(saver.list(config))
        latest = saver.get_tuple(config)
        values = build_support().compile(checkpointer=saver).get_state(config).values
        record = saver.threads.get(thread_id)
        audit = saver.audit_log(thread_id)
    assert checkpoints and latest is not None, f"no checkpoints of {thread_id} in accord's database"
    assert {c.metadata.get("graph_id") for c in checkpoints} == {"support"}
    # the engine kept the thread index and the audit log for the server's runs
    assert record is not None and record.graph == "support"
    assert record.epoch == (2 if finished else 1)
    assert any(e.kind == "route" and e.details().get("target") == "billing" for e in audit)
    if finished:
        assert record.status == "done" and record.pending is None
        assert "approved by studio-user" in values["messages"][-1].content
        assert any(e.kind == "human_decision" and e.details().get("by") == "studio-user"
                   for e in audit)
    else:
        assert record.status == "interrupted"
        assert record.pending["action_requests"][0]["name"] == "issue_refund"
        assert [a["tool"] for a in values["pending"]["actions"]] == ["issue_refund"]


def assert_no_inmem_checkpoints(workdir: Path, thread_id: str) -> None:
    """The in-memory server's own checkpoint pickles never saw the thread."""
    for pickle in (workdir / ".langgraph_api").glob(".langgraph_checkpoint*"):
        assert thread_id.encode() not in pickle.read_bytes(), pickle.name


async def serve_refund_across_restart(
    serve, workdir: Path, db_url: str, created: list[str] | None = None
) -> None:
    support_db = workdir / "support.db"
    env = {"ACCORD_DB_URL": db_url, "ACCORD_SUPPORT_DB": str(support_db)}
    with serve(workdir, env) as server:
        thread_id = await start_and_check(server.url, support_db)
    if created is not None:
        created.append(thread_id)
    assert_in_accord_db(db_url, thread_id, finished=False)
    assert SupportDB(support_db).refunds() == []

    with serve(workdir, env) as server:
        await resume_and_check(server.url, thread_id)
    assert_in_accord_db(db_url, thread_id, finished=True)
    assert_no_inmem_checkpoints(workdir, thread_id)
    refunds = SupportDB(support_db).refunds()
    assert [(r["invoice_id"], r["amount"]) for r in refunds] == [("INV-1002", 480)]


@pytest.mark.timeout(400)
async def test_dev_server_on_sqlite(serve, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/accord.db"
    await serve_refund_across_restart(serve, tmp_path / "server", db_url)


@pytest.mark.timeout(400)
async def test_dev_server_on_postgres(serve, tmp_path: Path, postgres_url: str) -> None:
    created: list[str] = []
    try:
        await serve_refund_across_restart(serve, tmp_path / "server", postgres_url, created)
    finally:
        with open_saver(postgres_url) as saver:
            for thread_id in created:
                saver.delete_thread(thread_id)


@pytest.mark.timeout(400)
async def test_thread_paused_in_the_server_is_approved_from_the_cli(serve, tmp_path: Path) -> None:
    """Resume from anywhere: a Studio/SDK thread finishes through `accord resume` in another process."""
    import asyncio
    import subprocess
    import sys

    workdir = tmp_path / "server"
    support_db = workdir / "support.db"
    db_url = f"sqlite:///{tmp_path}/accord.db"
    env = {"ACCORD_DB_URL": db_url, "ACCORD_SUPPORT_DB": str(support_db)}
    with serve(workdir, env) as server:
        thread_id = await start_and_check(server.url, support_db)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-P", "-m", "accord.cli.main", "resume", thread_id, "--approve",
         "--by", "cli-user", "--db", db_url, "--json"],
        capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "ACCORD_SUPPORT_DB": str(support_db)},
    )
    assert done.returncode == 0, done.stderr
    assert '"status": "done"' in done.stdout and "approved by cli-user" in done.stdout
    refunds = SupportDB(support_db).refunds()
    assert [(r["invoice_id"], r["amount"]) for r in refunds] == [("INV-1002", 480)]
