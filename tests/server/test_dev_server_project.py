"""`langgraph dev` serves a user's own project: the README's flow.py and langgraph.json in a
folder of their own, accord's checkpointer named by module. The README's SDK snippet pauses at
the editor's approval and approves it; the issue is sent once; the thread is accord's (the CLI
lists it). Also the repository's own langgraph.json serves the publishing desk."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from langgraph_sdk import get_client

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
OWN = README.split("### Your own project", 1)[1].split("\n## ", 1)[0]


def snippets(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", OWN, re.S)


@pytest.mark.timeout(600)
async def test_the_readme_project_is_served_and_approved_through_the_sdk(serve, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.py").write_text(snippets("python")[0])
    (project / "langgraph.json").write_text(snippets("json")[0])
    sdk = snippets("python")[2]
    assert "get_client" in sdk
    with serve(project, {"ACCORD_DB_URL": f"sqlite:///{project}/.accord/accord.db"}) as server:
        code = sdk.replace("http://127.0.0.1:2024", server.url)
        namespace: dict = {}
        exec("async def snippet():\n" + textwrap.indent(code, "    "), namespace)  # noqa: S102
        await namespace["snippet"]()
        async with get_client(url=server.url) as client:
            [thread] = await client.threads.search(limit=5)
            state = await client.threads.get_state(thread["thread_id"])
        # the approval ran the tool; its agent got the result back and answered with it
        last_two = [m["content"] for m in state["values"]["messages"][-2:]]
        assert last_two[0].startswith("send_issue approved by ana")
        assert last_two[1] == "sent 'Issue 14, for 90000 readers' to 90,000 readers"
    with sqlite3.connect(project / "sent.db") as db:
        assert db.execute("SELECT issue, audience FROM sent").fetchall() == [
            ("Issue 14, for 90000 readers", 90000)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-P", "-m", "accord.cli.main", "threads", "--json"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert thread["thread_id"] in listed.stdout and '"done"' in listed.stdout


@pytest.mark.timeout(600)
async def test_the_repository_serves_the_publishing_desk(serve, tmp_path: Path) -> None:
    story = "Write a story about the library for 20,000 readers."
    env = {"ACCORD_DB_URL": f"sqlite:///{tmp_path}/accord.db",
           "ACCORD_DESK_DB": str(tmp_path / "desk.db")}
    with serve(tmp_path / "server", env) as server:
        async with get_client(url=server.url) as client:
            graph = await client.assistants.get_graph("desk")
            edges = {(e["source"], e["target"]) for e in graph["edges"]}
            assert ("fact_checker", "editor") in edges and ("fact_checker", "publisher") not in edges
            thread = await client.threads.create()
            await client.runs.wait(thread["thread_id"], "desk", input={
                "messages": [{"role": "user", "content": story}]})
            state = await client.threads.get_state(thread["thread_id"])
            [waiting] = state["interrupts"] or [i for t in state["tasks"] for i in t["interrupts"]]
            assert waiting["value"]["action_requests"][0]["args"]["audience"] == 20000
            done = await client.runs.wait(thread["thread_id"], "desk", command={
                "resume": {"decision": "approve", "by": "ed"}})
    # the decision went back to the publisher, which published and said so
    assert [m["content"].split(":")[0] for m in done["messages"][-2:]] == [
        "publish_article approved by ed", "Published article #1"]
    with sqlite3.connect(tmp_path / "desk.db") as db:
        assert db.execute("SELECT audience FROM articles").fetchall() == [(20000,)]
