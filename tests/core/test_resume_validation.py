"""Resume values are validated; an invalid one re-asks with an error and loses nothing."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from accord.graphs import ApprovalDecision, InvalidResume, parse_decision
from accord.graphs.support import build_support

REFUND = "Please refund invoice INV-1002, I was charged twice"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "resume value is not valid JSON"),
        (b"{oops", "resume value is not valid JSON"),
        ('"approve"', "must be an object with a 'decision', got str"),
        (["approve"], "must be an object with a 'decision', got list"),
        ({}, "decision: Field required"),
        ({"reason": "because"}, "decision: Field required"),
        ({"decision": "maybe"}, "decision: Input should be 'approve', 'reject', 'edit' or 'respond'"),
        ({"decision": "reject"}, "a reject needs a reason"),
        ({"decision": "reject", "reason": "   "}, "a reject needs a reason"),
        ({"decision": "edit"}, "an edit needs args"),
        ({"decision": "edit", "args": {}}, "an edit needs args"),
        ({"decision": "approve", "args": {"amount": 1}}, "approve takes no args"),
        ({"decision": "approve", "when": "now"}, "when: Extra inputs are not permitted"),
        ({"decision": "approve", "by": "x" * 201}, "by: String should have at most 200 characters"),
    ],
)
def test_parse_decision_rejects_with_one_line(value, message):
    with pytest.raises(InvalidResume) as info:
        parse_decision(value)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"decision": "approve"}, ("approve", None, None, None)),
        ('{"decision": "approve", "by": "alice"}', ("approve", None, None, "alice")),
        ({"decision": "reject", "reason": "too much"}, ("reject", "too much", None, None)),
        ({"decision": "edit", "args": {"amount": 200}, "by": "bob"}, ("edit", None, {"amount": 200}, "bob")),
    ],
)
def test_parse_decision_accepts(value, expected):
    decision = parse_decision(value)
    assert isinstance(decision, ApprovalDecision)
    assert (decision.decision, decision.reason, decision.args, decision.by) == expected
    assert parse_decision(decision) is decision


def test_an_invalid_resume_leaves_the_thread_waiting_with_the_error(support_db, config):
    graph = build_support(db=support_db, use_llm=False).compile(checkpointer=InMemorySaver())
    cfg = config()
    graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, cfg)
    first = graph.get_state(cfg).interrupts[0].value
    assert first["error"] is None

    for bad, error in [("yes please", "not valid JSON"),
                       ({"decision": "reject"}, "a reject needs a reason"),
                       ({"decision": "approve", "args": {"amount": 1}}, "approve takes no args")]:
        graph.invoke(Command(resume=bad), cfg)
        state = graph.get_state(cfg)
        assert state.next == ("refund_approval",)
        [pending] = state.interrupts
        assert error in pending.value["error"]
        assert {k: v for k, v in pending.value.items() if k != "error"} == {
            k: v for k, v in first.items() if k != "error"}  # same request, re-asked
        assert support_db.refunds() == []

    out = graph.invoke(Command(resume={"decision": "approve", "by": "alice"}), cfg)
    state = graph.get_state(cfg)
    assert state.next == () and not state.interrupts
    assert [(r["invoice_id"], r["amount"]) for r in support_db.refunds()] == [("INV-1002", 480.0)]
    [human] = [e for e in out["audit"] if e["kind"] == "human_decision"]
    assert (human["decision"], human["by"]) == ("approve", "alice")


@pytest.mark.parametrize(("edit", "error"), [
    ({"decision": 1}, "invalid edit: issue_refund takes no argument 'decision'"),
    ({"amount": "abc"}, "invalid edit: amount: Input should be a valid number"),
    ({"amount": -5}, "invalid edit: amount: Input should be greater than 0"),
    ({"idempotency_key": "mine"}, "invalid edit: issue_refund takes no argument 'idempotency_key'"),
])
def test_a_bad_edit_is_asked_again_and_the_approval_is_not_used_up(support_db, config, edit, error):
    graph = build_support(db=support_db, use_llm=False).compile(checkpointer=InMemorySaver())
    cfg = config()
    graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, cfg)
    first = graph.get_state(cfg).interrupts[0].value
    graph.invoke(Command(resume={"decision": "edit", "args": edit}), cfg)
    state = graph.get_state(cfg)
    assert state.next == ("refund_approval",)
    [pending] = state.interrupts
    assert pending.value["error"].startswith(error)
    assert "\n" not in pending.value["error"]
    assert pending.value["action_requests"] == first["action_requests"]
    assert support_db.refunds() == []
    out = graph.invoke(Command(resume={"decision": "edit", "args": {"amount": 150}, "by": "bo"}),
                       cfg)
    assert [(r["invoice_id"], r["amount"]) for r in support_db.refunds()] == [("INV-1002", 150.0)]
    [human] = [e for e in out["audit"] if e["kind"] == "human_decision"]
    assert (human["decision"], human["args"]["amount"]) == ("edit", 150)
