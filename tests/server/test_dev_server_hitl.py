"""A LangChain human-in-the-loop client answers accord's approvals through `langgraph dev`.

The client knows nothing of accord: it reads each interrupt as LangChain's ``HITLRequest`` and
answers with LangChain's ``HITLResponse`` (approve, edit, reject, respond, and a batch of two
held calls), over langgraph-sdk against a real server subprocess. The support graph's LLM billing
agent runs against a local OpenAI-compatible server; each decision returns to its tool loop,
which answers the customer without a second interrupt, and the refunds happen once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain.agents.middleware.human_in_the_loop import (
    ApproveDecision,
    Decision,
    EditDecision,
    HITLRequest,
    HITLResponse,
    RejectDecision,
    RespondDecision,
)
from langgraph_sdk import get_client

from accord.graphs.support import SupportDB
from accord.testing import OpenAICompatServer, ToolCallReply


def refund(invoice: str, amount: float) -> ToolCallReply:
    return ToolCallReply("issue_refund", {"invoice_id": invoice, "amount": amount,
                                          "reason": "charged twice"})


# (request, what the model does first, the decisions, refunds made, the model's last answer)
CASES: list[tuple[str, Any, list[Decision], list[tuple[str, float]], str]] = [
    ("approve", refund("INV-1002", 480), [ApproveDecision(type="approve")],
     [("INV-1002", 480.0)], "approved answer"),
    ("edit", refund("INV-1004", 2400),
     [EditDecision(type="edit", edited_action={"name": "issue_refund", "args": {
         "invoice_id": "INV-1004", "amount": 1200, "reason": "half"}})],
     [("INV-1004", 1200.0)], "edited answer"),
    ("reject", refund("INV-1004", 500), [RejectDecision(type="reject", message="not eligible")],
     [], "rejected answer"),
    ("respond", refund("INV-1004", 600),
     [RespondDecision(type="respond", message="Annual plans are refunded by sales.")],
     [], "responded answer"),
    ("batch", [refund("INV-1002", 480), refund("INV-1004", 300)],
     [RejectDecision(type="reject", message="already refunded"), ApproveDecision(type="approve")],
     [("INV-1004", 300.0)], "batch answer"),
]


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def hitl_request(state: dict[str, Any]) -> HITLRequest:
    """The pending interrupt, read as LangChain's HITL request (nothing else)."""
    found = state.get("interrupts") or [i for task in state["tasks"] for i in task["interrupts"]]
    assert len(found) == 1, found
    value = found[0]["value"]
    return HITLRequest(action_requests=value["action_requests"],
                       review_configs=value["review_configs"])


@pytest.mark.timeout(400)
async def test_a_langchain_hitl_client_answers_accord_approvals(serve, tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    support_db = workdir / "support.db"
    script: list[Any] = []
    for _, first, _, _, answer in CASES:
        script += [first, answer]
    with OpenAICompatServer(script) as llm:
        env = {"ACCORD_DB_URL": f"sqlite:///{tmp_path}/accord.db",
               "ACCORD_SUPPORT_DB": str(support_db),
               "OPENAI_API_KEY": "test", "OPENAI_BASE_URL": llm.base_url}
        with serve(workdir, env) as server:
            async with get_client(url=server.url) as client:
                for name, first, decisions, _, answer in CASES:
                    thread_id = (await client.threads.create())["thread_id"]
                    await client.runs.wait(thread_id, "support", input={"messages": [
                        {"role": "user", "content": f"Please refund my invoices ({name})"}]})
                    state = await client.threads.get_state(thread_id)
                    assert state["next"] == ["refund_approval"], (name, server.log_tail())
                    request = hitl_request(state)
                    calls = first if isinstance(first, list) else [first]
                    assert [(a["name"], a["args"]) for a in request["action_requests"]] == [
                        (c.name, c.args) for c in calls], name
                    for config in request["review_configs"]:
                        assert config["action_name"] == "issue_refund"
                        assert set(config["allowed_decisions"]) == {
                            "approve", "edit", "reject", "respond"}
                        assert "amount" in config["args_schema"]["properties"]

                    result = await client.runs.wait(
                        thread_id, "support",
                        command={"resume": HITLResponse(decisions=decisions)})
                    assert isinstance(result, dict), (name, result, server.log_tail())
                    assert text_of(result["messages"][-1]) == answer, (name, server.log_tail())
                    state = await client.threads.get_state(thread_id)
                    assert state["next"] == [] and not state.get("interrupts"), name
                    assert state["values"]["pending"] is None
        requests = llm.requests

    # every decision went back into the agent's loop as the held call's tool message
    assert len(requests) == 2 * len(CASES)
    tool_answers = [[m for m in r["messages"] if m["role"] == "tool"] for r in requests[1::2]]
    assert [len(t) for t in tool_answers] == [1, 1, 1, 1, 2]
    approve, edit, reject, respond, batch = tool_answers
    assert '"amount": 480.0' in approve[0]["content"]
    assert "a human reviewer replaced this tool call" in edit[0]["content"]
    assert "with reason: not eligible" in reject[0]["content"]
    assert respond[0]["content"] == "Annual plans are refunded by sales."
    assert "with reason: already refunded" in batch[0]["content"]
    assert '"amount": 300.0' in batch[1]["content"]
    made = [(r["invoice_id"], r["amount"]) for r in SupportDB(support_db).refunds()]
    assert made == [refund for case in CASES for refund in case[3]]
