"""A decided approval returns to the agent that proposed it.

Approve, edit and respond give the agent the outcome (an LLM agent's tool loop continues with the
tool message, a rule-based agent is run again with the outcome in its handoff) and it finishes
without a second interrupt; a reject gives it the reviewer's message and it decides what comes
next. Several held calls of one LLM turn make one interrupt with a decision each.
"""

from __future__ import annotations

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from accord.agents import AgentResult, AgentSpec, ApprovalPolicy, ModelResolver
from accord.checkpoints import open_saver
from accord.graphs import Router, Step, Workflow
from accord.graphs.support import build_support
from accord.testing import ScriptedChatModel, ToolCallReply

REFUND_480 = ToolCallReply("issue_refund", {"invoice_id": "INV-1002", "amount": 480,
                                            "reason": "charged twice"})
REFUND_2400 = ToolCallReply("issue_refund", {"invoice_id": "INV-1004", "amount": 2400,
                                             "reason": "cancelled"})


def llm_support(support_db, script, saver=None):
    model = ScriptedChatModel(script)
    workflow = build_support(db=support_db, use_llm=True, models=ModelResolver(models={"*": model}))
    return workflow.compile(checkpointer=saver or InMemorySaver()), model


def ask(graph, cfg, text="Please refund invoice INV-1002, I was charged twice"):
    return graph.invoke({"messages": [{"role": "user", "content": text}]}, cfg)


def humans(out):
    return [e for e in out["audit"] if e["kind"] == "human_decision"]


def refunds(db):
    return [(r["invoice_id"], r["amount"]) for r in db.refunds()]


# LLM agents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("resume", "refunded", "answer"), [
    ({"decisions": [{"type": "approve"}], "by": "ana"}, [("INV-1002", 480.0)], '"amount": 480.0'),
    ({"decisions": [{"type": "edit", "edited_action": {"name": "issue_refund", "args": {
        "invoice_id": "INV-1002", "amount": 200, "reason": "partial"}}}]},
     [("INV-1002", 200.0)], "a human reviewer replaced this tool call"),
    ({"decision": "edit", "args": {"amount": 150}}, [("INV-1002", 150.0)], '"amount": 150.0'),
    ({"decisions": [{"type": "respond", "message": "Refunds of annual plans go through sales."}]},
     [], "Refunds of annual plans go through sales."),
    ({"decision": "respond", "message": "Ask sales."}, [], "Ask sales."),
])
def test_the_llm_loop_continues_with_the_outcome_and_finishes(support_db, config, resume,
                                                              refunded, answer):
    graph, model = llm_support(support_db, [REFUND_480, "Done: see above."])
    cfg = config()
    ask(graph, cfg)
    assert model.calls == 1 and graph.get_state(cfg).next == ("refund_approval",)

    out = graph.invoke(Command(resume=resume), cfg)
    state = graph.get_state(cfg)
    assert state.next == () and not state.interrupts  # no second interrupt
    assert refunds(support_db) == refunded
    # the model's second call continued its own loop: the handoff, its call, then the outcome
    assert model.calls == 2
    prompt = model.call_log[1]
    assert [m.type for m in prompt] == ["system", "human", "ai", "tool"]
    assert prompt[2].tool_calls[0]["name"] == "issue_refund"
    assert prompt[3].tool_call_id == prompt[2].tool_calls[0]["id"]
    assert answer in prompt[3].content and prompt[3].status == "success"
    assert out["messages"][-1].content == "Done: see above."
    assert out["messages"][-1].name == "billing"
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]
    assert out["pending"] is None and len(humans(out)) == 1


def test_a_reject_reaches_the_llm_agent_which_proposes_something_else(support_db, config):
    smaller = ToolCallReply("issue_refund", {"invoice_id": "INV-1002", "amount": 240,
                                             "reason": "half, as agreed"})
    graph, model = llm_support(support_db, [REFUND_480, smaller, "Refunded half: $240."])
    cfg = config()
    ask(graph, cfg)
    graph.invoke(Command(resume={"decisions": [{"type": "reject", "message": "only half"}]}), cfg)
    rejected = model.call_log[1][-1]
    assert (rejected.type, rejected.status) == ("tool", "error")
    assert rejected.content == ("User rejected the tool call for `issue_refund` with reason: "
                                "only half")
    # the agent decided: another action, held again (a new call, a new decision)
    state = graph.get_state(cfg)
    assert state.next == ("refund_approval",)
    [action] = state.interrupts[0].value["action_requests"]
    assert action["args"]["amount"] == 240
    assert refunds(support_db) == []

    out = graph.invoke(Command(resume={"decision": "approve", "by": "ana"}), cfg)
    assert refunds(support_db) == [("INV-1002", 240.0)]
    assert out["messages"][-1].content == "Refunded half: $240."
    assert [h["decision"] for h in humans(out)] == ["reject", "approve"]
    assert graph.get_state(cfg).next == ()


def test_a_reject_lets_the_llm_agent_give_up(support_db, config):
    graph, model = llm_support(support_db, [REFUND_480, "I cannot refund this, sorry."])
    cfg = config()
    ask(graph, cfg)
    out = graph.invoke(Command(resume={"decision": "reject", "reason": "no", "by": "ana"}), cfg)
    assert out["messages"][-1].content == "I cannot refund this, sorry."
    assert refunds(support_db) == [] and graph.get_state(cfg).next == ()


def test_two_held_calls_in_one_turn_make_one_interrupt_with_a_decision_each(support_db, config):
    lookup = ToolCallReply("get_invoice", {"invoice_id": "INV-1002"})
    graph, model = llm_support(support_db, [[REFUND_480, lookup, REFUND_2400], "Both handled."])
    cfg = config()
    ask(graph, cfg, "refund INV-1002 and INV-1004")
    state = graph.get_state(cfg)
    [pending] = state.interrupts  # one interrupt
    request = pending.value
    assert [(a["name"], a["args"]["invoice_id"]) for a in request["action_requests"]] == [
        ("issue_refund", "INV-1002"), ("issue_refund", "INV-1004")]
    assert [c["action_name"] for c in request["review_configs"]] == ["issue_refund"] * 2
    assert model.calls == 1

    # one decision for two actions is refused and asked again; nothing runs
    graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), cfg)
    again = graph.get_state(cfg).interrupts[0].value
    assert again["error"] == "this approval holds 2 action(s); give 2 decision(s), got 1"
    assert refunds(support_db) == []

    out = graph.invoke(Command(resume={"decisions": [
        {"type": "approve"}, {"type": "reject", "message": "enterprise refunds need sales"}],
        "by": "ana"}), cfg)
    assert graph.get_state(cfg).next == ()
    assert refunds(support_db) == [("INV-1002", 480.0)]
    tools = model.call_log[1][3:]
    assert [(m.name, m.status) for m in tools] == [
        ("issue_refund", "success"), ("get_invoice", "success"), ("issue_refund", "error")]
    assert '"id": "INV-1002"' in tools[1].content  # the ungated call ran in the turn
    assert "enterprise refunds need sales" in tools[2].content
    assert [(h["decision"], h["by"]) for h in humans(out)] == [("approve", "ana"), ("reject", "ana")]
    assert out["messages"][-1].content == "Both handled."


def test_a_bad_langchain_edit_is_asked_again_and_the_approval_is_not_used_up(support_db, config):
    graph, _ = llm_support(support_db, [REFUND_480, "Done."])
    cfg = config()
    ask(graph, cfg)

    def edit(args, name="issue_refund"):
        graph.invoke(Command(resume={"decisions": [
            {"type": "edit", "edited_action": {"name": name, "args": args}}]}), cfg)
        state = graph.get_state(cfg)
        assert state.next == ("refund_approval",)
        return state.interrupts[0].value["error"]

    base = {"invoice_id": "INV-1002", "reason": "x"}
    assert edit({**base, "amount": -5}) == "invalid edit: amount: Input should be greater than 0"
    assert edit({**base, "amount": "abc"}).startswith("invalid edit: amount: Input should be a valid")
    assert edit({**base, "amount": 5, "decision": 1}).startswith(
        "invalid edit: issue_refund takes no argument 'decision'")
    assert edit({"invoice_id": "INV-1002", "amount": 5}) == "invalid edit: reason: Field required"
    assert edit({**base, "amount": 5}, name="create_ticket") == (
        "invalid edit: an edit may not change the tool (issue_refund, not create_ticket)")
    graph.invoke(Command(resume={"decisions": [{"type": "maybe"}]}), cfg)
    assert "decisions.0" in graph.get_state(cfg).interrupts[0].value["error"]
    assert refunds(support_db) == []
    graph.invoke(Command(resume={"decisions": [{"type": "edit", "edited_action": {
        "name": "issue_refund", "args": {**base, "amount": 99}}}]}), cfg)
    assert refunds(support_db) == [("INV-1002", 99.0)]
    assert graph.get_state(cfg).next == ()


def test_an_approved_llm_call_runs_once_across_a_rerun_of_the_agent(tmp_path, support_db, config):
    """On accord's saver the approval's run is in the ledger: the continued loop re-proposing
    the same call gets the recorded outcome, not a second refund or a second interrupt."""
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph, model = llm_support(support_db, [REFUND_480, REFUND_480, "Refunded once."], saver)
        cfg = config()
        ask(graph, cfg)
        out = graph.invoke(Command(resume={"decision": "approve", "by": "ana"}), cfg)
        assert graph.get_state(cfg).next == ()
    assert refunds(support_db) == [("INV-1002", 480.0)]
    repeated = model.call_log[2][-1]
    assert repeated.type == "tool" and '"amount": 480.0' in repeated.content
    assert out["messages"][-1].content == "Refunded once." and len(humans(out)) == 1


# rule-based agents ---------------------------------------------------------------------------


@tool
def close_account(email: str, idempotency_key: str = "") -> str:
    """Close a customer's account."""
    closed.append((email, idempotency_key))
    return f"closed {email}"


closed: list[tuple[str, str]] = []


def closer(handoff, tools):
    args = {"email": "a@example.com"}
    review = tools.review("close_account", args)
    if review is not None and review.decision == "reject":  # escalate, with the reviewer's why
        return AgentResult(f"escalated: {review.message}", status="handoff", handoff_to="triage")
    if review is not None and review.decision == "respond":
        return AgentResult(f"not closed: {review.message}")
    action = tools.gate("close_account", args)
    if action:
        return AgentResult("Closing needs approval.", status="needs_approval", action=action)
    return AgentResult(f"done: {tools('close_account', **args)}")


def triage(state):
    task = state["active_task"]
    return Step("END", {"tasks": {task: {"status": "completed", "result": "triaged"}}})


@pytest.fixture
def accounts():
    closed.clear()
    workflow = (
        Workflow("accounts", router=Router(default="closer"), max_hops=10, error_node="triage",
                 tools=[close_account],
                 approvals=[ApprovalPolicy("close_account", approval_node="approve_close")])
        .agent(AgentSpec(id="closer", purpose="Closes accounts", kind="rules", handler=closer,
                         tools=("close_account",)))
        .approval("approve_close")
        .node("triage", triage)
        .transitions({"router": ["closer", "END"], "closer": ["router", "approve_close", "triage"],
                      "approve_close": ["router"], "triage": ["END"]})
    )
    return workflow.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize(("resume", "reply", "ran"), [
    ({"decision": "approve", "by": "ana"}, "done: closed a@example.com", 1),
    ({"decisions": [{"type": "edit", "edited_action": {"name": "close_account",
                                                      "args": {"email": "b@example.com"}}}]},
     "done: closed b@example.com", 1),
    ({"decisions": [{"type": "respond", "message": "already closed last week"}]},
     "not closed: already closed last week", 0),
])
def test_a_rule_agent_is_run_again_with_the_outcome_and_finishes(accounts, config, resume,
                                                                 reply, ran):
    cfg = config()
    ask(accounts, cfg, "close my account")
    assert accounts.get_state(cfg).next == ("approve_close",)
    out = accounts.invoke(Command(resume=resume), cfg)
    state = accounts.get_state(cfg)
    assert state.next == () and not state.interrupts
    assert out["messages"][-1].content == reply and out["messages"][-1].name == "closer"
    assert len(closed) == ran  # the approval ran it once; the agent's call got that result
    transitions = [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "transition"]
    assert ("approve_close", "closer") in transitions


def test_a_reject_reaches_the_rule_agent_which_escalates(accounts, config):
    cfg = config()
    ask(accounts, cfg, "close my account")
    out = accounts.invoke(Command(resume={"decision": "reject", "reason": "open invoices"}), cfg)
    assert closed == []
    assert [m.content for m in out["messages"] if m.name == "closer"][-1] == (
        "escalated: open invoices")
    transitions = [(e["node"], e["target"]) for e in out["audit"] if e["kind"] == "transition"]
    assert transitions[-3:] == [("approve_close", "closer"), ("closer", "triage"),
                                ("triage", "__end__")]
    assert out["tasks"][out["active_task"]]["result"] == "triaged"


def test_the_drawing_shows_the_return_path(accounts):
    drawn = {(e.source, e.target) for e in accounts.get_graph().edges}
    assert ("approve_close", "closer") in drawn


def test_a_decision_the_policy_does_not_allow_is_refused():
    from accord.agents import ProposedAction, ToolBox
    from accord.graphs import InvalidResume, parse_resume
    from accord.graphs.hitl import approval_request

    box = ToolBox([close_account], [ApprovalPolicy("close_account", approval_node="a",
                                                   decisions=("approve", "reject"))])
    action = ProposedAction("close_account", {"email": "a@example.com"}, approval_node="a",
                            idempotency_key="k")
    request = approval_request([action], box, approval_node="a", agent="closer", task_id="t",
                               thread_id="th")
    assert request["review_configs"][0]["allowed_decisions"] == ["approve", "reject"]
    assert request["review_configs"][0]["args_schema"]["properties"] == {
        "email": {"title": "Email", "type": "string"}}  # the idempotency key is accord's
    with pytest.raises(InvalidResume, match="close_account allows approve, reject, not respond"):
        parse_resume({"decisions": [{"type": "respond", "message": "no"}]}, [action], box)
    [decision] = parse_resume('{"decisions": [{"type": "reject"}], "by": "ana"}', [action], box)
    assert (decision.type, decision.message, decision.by) == ("reject", None, "ana")
