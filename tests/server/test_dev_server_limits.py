"""`langgraph dev` runs the engine's permissions and rate limits: a verified user sees only their
own invoice, and a user over their rate is refused and recorded, like from Python and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from accord.checkpoints import open_saver
from accord.records import AuditKind


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.mark.timeout(400)
async def test_permissions_and_rate_limits_hold_through_the_dev_server(serve: Any,
                                                                       tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    limits = tmp_path / "limits.yaml"
    limits.write_text("rate_limits:\n  - {scope: user, requests_per_second: 0.001, max_wait: 0}\n")
    db_url = f"sqlite:///{tmp_path}/accord.db"
    env = {"ACCORD_DB_URL": db_url, "ACCORD_SUPPORT_DB": str(workdir / "support.db"),
           "ACCORD_LIMITS": str(limits)}
    alice = {"configurable": {"user_id": "alice@example.com"}}
    with serve(workdir, env) as server:
        async with get_client(url=server.url, timeout=120) as client:
            first = (await client.threads.create())["thread_id"]
            result = await client.runs.wait(first, "support", config=alice,
                                            input=ask("What is the status of invoice INV-1003?"))
            assert "__error__" not in result, result
            said = result["messages"][-1]["content"]
            assert "may not see this data" in said and "19.00" not in said

            second = (await client.threads.create())["thread_id"]
            result = await client.runs.wait(second, "support", config=alice, raise_error=False,
                                            input=ask("What is the status of invoice INV-1002?"))
            assert "RateLimited" in str(result.get("__error__")), result

    with open_saver(db_url) as saver:
        denied = [e for e in saver.audit_log(first) if e.kind is AuditKind.PERMISSION_DENIED]
        assert [e.details()["tool"] for e in denied] == ["get_invoice"]
        [refused] = saver.audit_log(second)
        assert (refused.kind, refused.details()["guardrail"]) == (AuditKind.INPUT_REFUSED,
                                                                 "rate_limited")
        assert saver.threads.get(second) is None
