"""Permissions: an agent reads only its declared context keys and calls only its declared tools;
a tool's data is shown only to the end user it belongs to. Violations are recorded, not applied."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from accord.agents import AgentResult, AgentSpec, ModelResolver
from accord.checkpoints import open_saver
from accord.graphs import Router, Workflow
from accord.graphs.support import build_support
from accord.graphs.support.db import support_tools
from accord.testing import ScriptedChatModel, ToolCallReply

SECRET = "TOP-SECRET-42"
SHARED = "S-VALUE-7"


def _context_flow(reader: AgentSpec, models: ModelResolver | None = None) -> Workflow:
    """intake writes two context keys and hands the task to `reader`, which declares one."""

    def intake(handoff, tools):
        return AgentResult("noted", status="handoff", handoff_to="reader",
                           writes={"shared": SHARED, "secret": SECRET})

    flow = Workflow("ctx", router=Router(default="intake"), max_hops=6, models=models)
    flow.agent(AgentSpec(id="intake", purpose="takes requests", kind="rules", handler=intake,
                         writes=("shared", "secret")))
    flow.agent(reader, node="reader")
    return flow.transitions({"router": ["intake", "END"], "intake": ["reader"],
                             "reader": ["router"]})


def test_a_rule_agent_gets_only_the_context_keys_it_declares():
    seen: list[dict] = []

    def reader(handoff, tools):
        seen.append(dict(handoff.context))
        return AgentResult("read")

    spec = AgentSpec(id="reader", purpose="reads", kind="rules", handler=reader, reads=("shared",))
    out = _context_flow(spec).compile().invoke({"messages": [{"role": "user", "content": "go"}]})
    assert out["context"]["secret"]["value"] == SECRET  # it is in the shared state...
    assert seen == [{"shared": SHARED}]                  # ...but never reaches the agent


def test_an_llm_agent_never_sees_an_undeclared_context_key():
    model = ScriptedChatModel(["done"])
    spec = AgentSpec(id="reader", purpose="reads", kind="llm", model="small", reads=("shared",))
    out = _context_flow(spec, ModelResolver(models={"*": model})).compile().invoke(
        {"messages": [{"role": "user", "content": "go"}]})
    assert out["context"]["secret"]["value"] == SECRET
    [prompt] = model.call_log
    text = "\n".join(str(m.content) for m in prompt)
    assert SHARED in text and SECRET not in text


def test_a_rule_agent_calling_an_undeclared_tool_is_refused_and_recorded(support_db):
    def greedy(handoff, tools):
        return AgentResult(str(tools("issue_refund", invoice_id="INV-1001", amount=5,
                                     reason="because")))

    flow = Workflow("perm", router=Router(default="greedy"), max_hops=6,
                    tools=support_tools(support_db))
    flow.agent(AgentSpec(id="greedy", purpose="t", kind="rules", handler=greedy,
                         tools=("get_invoice",)))
    out = flow.transitions({"router": ["greedy", "END"], "greedy": ["router"]}).compile().invoke(
        {"messages": [{"role": "user", "content": "refund me"}]})
    [denied] = [e for e in out["audit"] if e["kind"] == "permission_denied"]
    assert "'issue_refund' is not declared" in denied["reason"]
    assert out["tasks"][out["active_task"]]["status"] == "failed"
    assert support_db.refunds() == []  # not applied


def test_an_llm_agent_calling_a_tool_it_was_not_given_is_recorded(support_db):
    model = ScriptedChatModel([ToolCallReply("issue_refund", {"invoice_id": "INV-1001",
                                                              "amount": 5, "reason": "x"}),
                               "I cannot do that."])
    flow = Workflow("perm", router=Router(default="helper"), max_hops=6,
                    tools=support_tools(support_db), models=ModelResolver(models={"*": model}))
    flow.agent(AgentSpec(id="helper", purpose="t", kind="llm", model="small",
                         tools=("get_invoice",)))
    out = flow.transitions({"router": ["helper", "END"], "helper": ["router"]}).compile().invoke(
        {"messages": [{"role": "user", "content": "refund me"}]})
    [denied] = [e for e in out["audit"] if e["kind"] == "permission_denied"]
    assert (denied["tool"], denied["agent"]) == ("issue_refund", "helper")
    assert support_db.refunds() == []


# a tool's data, for the end user it belongs to -------------------------------------------------
@pytest.fixture
def support(tmp_path, support_db):
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        yield build_support(db=support_db, use_llm=False).compile(checkpointer=saver), saver


def ask(graph, text: str, thread: str, user: str | None = None) -> dict:
    configurable = {"thread_id": thread, **({"user_id": user} if user else {})}
    return graph.invoke({"messages": [{"role": "user", "content": text}]},
                        {"configurable": configurable})


def replies(out: dict) -> str:
    return "\n".join(m.content for m in out["messages"] if isinstance(m, AIMessage))


def test_a_verified_user_sees_another_customers_invoice_never(support):
    graph, saver = support
    out = ask(graph, "What is the status of invoice INV-1003?", "p-1", user="alice@example.com")
    assert "19.00" not in replies(out) and "Starter plan" not in replies(out)
    assert "may not see this data" in replies(out)
    assert out["tasks"][out["active_task"]]["status"] == "failed"
    logged = [e for e in saver.audit_log("p-1") if e.kind == "permission_denied"]
    assert [(e.agent, e.details()["tool"]) for e in logged] == [("billing_rules", "get_invoice")]


def test_a_verified_user_sees_their_own_invoice(support):
    graph, _ = support
    out = ask(graph, "What is the status of invoice INV-1002?", "p-2", user="alice@example.com")
    assert "INV-1002: $480.00" in replies(out)
    assert not [e for e in out["audit"] if e["kind"] == "permission_denied"]


def test_a_run_without_an_end_user_is_not_restricted_by_default(support):
    graph, _ = support
    out = ask(graph, "What is the status of invoice INV-1003?", "p-3")
    assert "INV-1003: $19.00" in replies(out)


def test_an_llm_agent_never_sees_another_customers_data_nor_refunds_it(tmp_path, support_db):
    model = ScriptedChatModel([
        ToolCallReply("get_invoice", {"invoice_id": "INV-1003"}),
        ToolCallReply("issue_refund", {"invoice_id": "INV-1003", "amount": 5, "reason": "x"}),
        "Sorry, I can't help with that invoice.",
    ])
    flow = build_support(db=support_db, use_llm=True, models=ModelResolver(models={"*": model}))
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        out = ask(flow.compile(checkpointer=saver), "Refund $5 on invoice INV-1003 please",
                  "p-4", user="alice@example.com")
    after_lookup, after_refund = model.call_log[1], model.call_log[2]
    assert "Not permitted" in after_lookup[-1].content
    assert "Bob Chen" not in str(after_lookup) and "19.0" not in str(after_lookup[-1].content)
    assert "Not permitted" in after_refund[-1].content
    assert support_db.refunds() == []
    denied = [e for e in out["audit"] if e["kind"] == "permission_denied"]
    assert [e["tool"] for e in denied] == ["get_invoice", "issue_refund"]


def test_the_cli_passes_the_end_user(accord):
    done = accord("run", "support", "What is the status of invoice INV-1003?", "--no-input",
                  "--user", "alice@example.com")
    assert done.returncode == 0, done.stderr
    assert "may not see this data" in done.stdout
    mine = accord("run", "support", "What is the status of invoice INV-1003?", "--no-input",
                  "--user", "bob@example.com")
    assert "INV-1003: $19.00" in mine.stdout
