"""`langgraph dev` sees the release rows of accord's database: a flag switched off from the CLI
while the server runs applies to the server's next run, with no restart, and the server's runs
pin their threads to a version like every other entry point."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from accord.checkpoints import open_saver

REQUEST = "Please refund invoice INV-1002, I was charged twice"


def cli(*args: str, support_db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ACCORD_SUPPORT_DB": str(support_db)})


async def ask(url: str) -> tuple[str, dict]:
    async with get_client(url=url) as client:
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "support", input={"messages": [
            {"role": "user", "content": REQUEST}]})
        state = await client.threads.get_state(thread["thread_id"])
    return thread["thread_id"], state["values"]


@pytest.mark.timeout(400)
async def test_a_flag_set_from_the_cli_applies_to_the_running_server(serve, tmp_path: Path):
    workdir = tmp_path / "server"
    support_db = workdir / "support.db"
    db_url = f"sqlite:///{tmp_path}/accord.db"
    env = {"ACCORD_DB_URL": db_url, "ACCORD_SUPPORT_DB": str(support_db)}
    with serve(workdir, env) as server:
        first, values = await ask(server.url)
        assert values["versions"] == {"billing_rules": "1.0.0"}
        assert values["pending"]["agent"] == "billing_rules"  # billing answered: an approval
        done = await asyncio.to_thread(cli, "flags", "set", "billing_rules", "off", "--db",
                                       db_url, "--by", "ops", support_db=support_db)
        assert done.returncode == 0, done.stderr
        second, values = await ask(server.url)  # the same server process, no restart
        assert not values.get("pending")
    with open_saver(db_url) as saver:
        runs = [e.details() for e in saver.audit_log(second) if e.kind == "agent_run"]
        failed = [e.details() for e in saver.audit_log(second) if e.kind == "agent_failed"]
        assert saver.threads.get(first).status == "interrupted"
    assert [(r["agent"], r["outcome"]) for r in runs] == [("billing_rules", "disabled")]
    assert failed[0]["error"] == "AgentDisabled: agent billing_rules is disabled by its flag"
