"""The support example end to end with its rule-based agents (the offline default)."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from accord.graphs.support import build_support


@pytest.fixture
def support(support_db, config):
    graph = build_support(db=support_db, use_llm=False).compile(checkpointer=InMemorySaver())

    def ask(text: str, cfg: dict | None = None) -> tuple[dict, dict]:
        cfg = cfg or config()
        return graph.invoke({"messages": [{"role": "user", "content": text}]}, cfg), cfg

    ask.graph = graph
    return ask


def first_route(out: dict) -> dict:
    return next(e for e in out["audit"] if e["kind"] == "route")


def statuses(out: dict) -> list[str]:
    return [t["status"] for t in out["tasks"].values()]


def test_large_refund_waits_for_approval(support, support_db):
    out, cfg = support("Please refund invoice INV-1002, I was charged twice")
    assert (first_route(out)["tier"], first_route(out)["target"]) == ("rule", "billing")
    assert statuses(out) == ["awaiting_approval"]
    assert out["messages"][-1].content == (
        "A refund of $480.00 on INV-1002 needs a manager's approval; I've asked for it.")
    state = support.graph.get_state(cfg)
    assert state.next == ("refund_approval",)
    request = state.interrupts[0].value
    [action] = request["action_requests"]
    assert (request["type"], action["name"], request["agent"], request["risk"]) == (
        "approval", "issue_refund", "billing_rules", "high")
    assert action["args"]["invoice_id"] == "INV-1002" and action["args"]["amount"] == 480.0
    [config] = request["review_configs"]
    assert config["action_name"] == "issue_refund"
    assert config["allowed_decisions"] == ["approve", "edit", "reject", "respond"]
    assert set(config["args_schema"]["properties"]) == {"invoice_id", "amount", "reason"}
    [held] = out["pending"]["actions"]
    assert held["idempotency_key"] and out["pending"]["node"] == "billing"
    assert support_db.refunds() == []


def test_small_refund_is_issued_at_once(support, support_db):
    out, _ = support("refund $40 of INV-1004")
    assert first_route(out)["target"] == "billing"
    assert out["messages"][-1].content.startswith("Refunded $40.00 on INV-1004")
    assert statuses(out) == ["completed"]
    assert [(r["invoice_id"], r["amount"]) for r in support_db.refunds()] == [("INV-1004", 40.0)]
    assert out["context"]["invoice"]["value"] == "INV-1004"
    assert out["context"]["customer_email"]["value"] == "carla@example.com"
    tools = [e["tool"] for e in out["audit"] if e["kind"] == "tool_call"]
    assert tools == ["get_invoice", "issue_refund"]


def test_crash_goes_to_tech_and_answers_from_the_knowledge_base(support, support_db):
    out, _ = support("my app crashes on start")
    assert first_route(out)["target"] == "tech"
    assert out["messages"][-1].content.startswith("App crashes on start (KB-2)")
    assert out["outputs"]["tech"]["output"] == {"article": "KB-2"}
    assert statuses(out) == ["completed"]
    assert support_db.tickets() == [] and support_db.refunds() == []


def test_password_reset_goes_to_account(support, support_db):
    out, _ = support("I forgot my password, alice@example.com")
    assert first_route(out)["target"] == "account"
    # the email was redacted at the entry: the state holds its placeholder, the tool the real value
    assert out["messages"][-1].content == "I sent a password-reset link to <EMAIL_1>."
    assert statuses(out) == ["completed"]
    resets = support_db.query("SELECT email FROM password_resets")
    assert resets == [{"email": "alice@example.com"}]
    assert "alice@example.com" not in str(out)
    assert out["context"]["customer_email"]["writer"] == "account_rules"


def test_asking_for_a_manager_escalates_to_human_triage(support, support_db):
    out, _ = support("I want to speak to a manager")
    assert (first_route(out)["tier"], first_route(out)["target"]) == ("rule", "human_triage")
    [ticket] = support_db.tickets()
    assert ticket["queue"] == "escalations" and "I want to speak to a manager" in ticket["body"]
    assert f"ticket #{ticket['id']}" in out["messages"][-1].content
    assert statuses(out) == ["completed"]
    assert [e["ticket"] for e in out["audit"] if e["kind"] == "escalated"] == [ticket["id"]]


def test_an_unknown_invoice_fails_the_task_without_side_effects(support, support_db):
    out, _ = support("refund INV-9999 please")
    assert statuses(out) == ["failed"]
    assert out["messages"][-1].content == "unknown invoice INV-9999"
    assert support_db.refunds() == []


def test_reject_fails_the_task_and_refunds_nothing(support, support_db):
    _, cfg = support("Please refund invoice INV-1002, I was charged twice")
    out = support.graph.invoke(Command(resume={"decision": "reject", "reason": "duplicate claim",
                                               "by": "alice"}), cfg)
    # the reject reaches the billing agent, which tells the customer why and gives up
    assert statuses(out) == ["failed"]
    assert [(m.name, m.content) for m in out["messages"][-2:]] == [
        ("refund_approval", "issue_refund was rejected by alice: duplicate claim"),
        ("billing", "The refund of $480.00 on INV-1002 was not approved: duplicate claim")]
    assert support_db.refunds() == []
    assert support.graph.get_state(cfg).next == ()
    assert out["pending"] is None
    assert [e["kind"] for e in out["audit"]].count("human_decision") == 1


def test_several_requests_on_one_thread(support, support_db):
    out, cfg = support("my app crashes on start")
    first_task = next(iter(out["tasks"]))
    out, _ = support("refund $40 of INV-1004", cfg)
    # the state keeps the tasks of the request in progress; earlier ones are in the audit log
    assert statuses(out) == ["completed"] and first_task not in out["tasks"]
    assert [m.type for m in out["messages"]] == ["human", "ai", "human", "ai"]
    assert len(support_db.refunds()) == 1
