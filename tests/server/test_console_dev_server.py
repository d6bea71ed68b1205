"""``langgraph dev`` serves the console (``langgraph.json`` ``http.app``): a run started through
the SDK waits in the inbox and is approved from the console, once."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from langgraph_sdk import get_client

from accord.graphs.support import SupportDB
from accord.server.auth import Role
from accord.server.console.store import ConsoleStore

REQUEST = "I was charged twice for INV-1004. Please refund $150."


async def test_langgraph_dev_serves_the_console(serve, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/accord.db"
    store = ConsoleStore(db_url)
    store.add_user("alice", Role.APPROVER, "password-1")
    store.close()
    env = {"ACCORD_DB_URL": db_url, "ACCORD_SUPPORT_DB": str(tmp_path / "support.db")}
    with serve(tmp_path / "server", env) as server:
        async with get_client(url=server.url) as client:
            thread = (await client.threads.create())["thread_id"]
            await client.runs.wait(thread, "support", input={"messages": [
                {"role": "user", "content": REQUEST}]})
            async with httpx.AsyncClient(base_url=f"{server.url}/console", timeout=60) as web:
                form = (await web.get("/signin")).text
                csrf = re.search(r'name="csrf" value="([^"]*)"', form)[1]
                signed = await web.post("/signin", data={"name": "alice", "csrf": csrf,
                                                         "password": "password-1"})
                assert signed.status_code == 303, server.log_tail()
                inbox = (await web.get("/inbox")).text
                assert f'data-thread="{thread}"' in inbox
                fields = dict(re.findall(r'name="(csrf|fingerprint)" value="([^"]*)"', inbox))
                answered = await web.post("/decide", data={**fields, "thread_id": thread,
                                                           "decision": "approve"})
                assert answered.status_code == 303, answered.text
                assert 'class="status">done<' in (await web.get(f"/threads/{thread}")).text
                assert (await web.get("/static/mermaid.min.js")).status_code == 200
                for path in ("/health", "/letters", "/feedback.jsonl"):
                    assert (await web.get(path)).status_code == 200, server.log_tail(30)
            state = await client.threads.get_state(thread)
            assert "approved by alice" in state["values"]["messages"][-1]["content"]
    assert [r["amount"] for r in SupportDB(tmp_path / "support.db").refunds("INV-1004")] == [150.0]
