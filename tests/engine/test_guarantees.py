"""Guarantees of the engine that hold whatever the agents do.

- an agent's handoff carries the shared-context keys it declares it reads, and no other: an
  undeclared key reaches neither a rule handler nor the text an LLM agent's model sees;
- the router's LLM tier follows the model at exactly its confidence threshold and falls back
  to the declared default just below it, recording why;
- retries are counted: an LLM agent's transient model failure is retried within its
  ``RetrySpec`` before its fallback takes over, and the router records how many calls its
  classification took;
- what the saver records is typed: audit kinds, task statuses and thread statuses are members
  of accord's enums, in the stored rows as well as in what the saver reads back.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.types import Command

from accord.agents import AgentRegistry, AgentResult, AgentSpec, ModelResolver, RetrySpec
from accord.checkpoints import open_saver
from accord.graphs import LLMClassifier, Router, Step, Workflow
from accord.graphs.support import SupportDB, build_support
from accord.records import AuditEvent, AuditKind, TaskStatus, ThreadStatus
from accord.testing import ScriptedChatModel, StructuredReply

A_VALUE = "alpha-7f3e"
B_VALUE = "bravo-91c2"
"""Values no prompt, system text or query contains by chance."""


def ask(graph: Any, text: str, thread: str) -> dict[str, Any]:
    return graph.invoke({"messages": [{"role": "user", "content": text}]},
                        {"configurable": {"thread_id": thread}})


def first(events: list[AuditEvent], kind: AuditKind) -> AuditEvent:
    return next(e for e in events if e.kind is kind)


# an undeclared shared-context key never reaches an agent --------------------------------------
def context_workflow(reader: AgentSpec, model: ScriptedChatModel | None = None) -> Workflow:
    """router -> writer (writes ``a`` and ``b``, hands the task to ``reader``) -> reader."""

    def write_both(handoff, tools) -> AgentResult:
        return AgentResult("written", status="handoff", handoff_to="reader",
                           writes={"a": A_VALUE, "b": B_VALUE})

    writer = AgentSpec(id="writer", purpose="Writes two keys", kind="rules", handler=write_both,
                       writes=("a", "b"))
    models = ModelResolver(models={"*": model}) if model is not None else None
    return (Workflow("ctx", router=Router(default="writer"), max_hops=8, models=models)
            .agent(writer).agent(reader)
            .transitions({"router": ["writer", "reader", "END"], "writer": ["router"],
                          "reader": ["router"]}))


@pytest.mark.parametrize(("reads", "expected"), [
    (("a",), {"a": A_VALUE}),
    ((), {}),
    (("a", "b"), {"a": A_VALUE, "b": B_VALUE}),  # control: a declared key does arrive
], ids=["reads-a", "reads-nothing", "reads-both"])
def test_a_rule_agent_gets_only_the_context_keys_it_declares(tmp_path, reads, expected):
    handoffs = []

    def capture(handoff, tools) -> AgentResult:
        handoffs.append(handoff)
        return AgentResult("read")

    reader = AgentSpec(id="reader", purpose="Reads", kind="rules", handler=capture, reads=reads)
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = context_workflow(reader).compile(checkpointer=saver)
        out = ask(graph, "go", "ctx-rules")
    # both keys are in the shared context when the reader runs ...
    assert {k: v["value"] for k, v in out["context"].items()} == {"a": A_VALUE, "b": B_VALUE}
    assert out["messages"][-1].content == "read"
    # ... and the handoff carries exactly the declared ones, nothing of the conversation
    [handoff] = handoffs
    assert handoff.context == expected
    assert handoff.query == "go"


@pytest.mark.parametrize("reads", [("a",), ("a", "b")], ids=["reads-a", "reads-both"])
def test_an_llm_agent_sees_only_the_context_keys_it_declares(tmp_path, reads):
    model = ScriptedChatModel(["read by the model"])
    reader = AgentSpec(id="reader", purpose="Reads", model="small", reads=reads)
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = context_workflow(reader, model).compile(checkpointer=saver)
        out = ask(graph, "go", "ctx-llm")
    assert out["messages"][-1].content == "read by the model"
    assert model.calls == 1
    [prompt] = model.call_log
    seen = "\n".join(str(m.content) for m in prompt)
    assert f"context.a: {A_VALUE}" in seen
    if reads == ("a",):
        assert "context.b" not in seen and B_VALUE not in seen
        # the writer's reply is part of the conversation, not of the handoff
        assert "written" not in seen
    else:  # control: the same prompt does carry b once it is declared
        assert f"context.b: {B_VALUE}" in seen


# the router's confidence threshold at its boundary ---------------------------------------------
def routed(model: ScriptedChatModel, classifier: LLMClassifier) -> Workflow:
    """router -> tech | triage (the default); neither node calls a model."""

    def answer(name: str):
        def node(state: dict[str, Any]) -> Step:
            return Step("END", {
                "tasks": {state["active_task"]: {"status": "completed", "result": name}},
                "messages": [AIMessage(f"{name} answered", name=name)],
            })

        return node

    return (Workflow("routed", router=Router(default="triage", classifier=classifier),
                     max_hops=6, models=ModelResolver(models={"*": model}))
            .node("tech", answer("tech")).node("triage", answer("triage"))
            .transitions({"router": ["tech", "triage", "END"], "tech": ["END"],
                          "triage": ["END"]}))


@pytest.mark.parametrize(("confidence", "tier", "target"), [
    (0.6, "llm", "tech"),
    (0.59, "default", "triage"),
    (1.0, "llm", "tech"),
    (0.0, "default", "triage"),
])
def test_the_llm_tier_is_followed_from_its_threshold_up(tmp_path, confidence, tier, target):
    model = ScriptedChatModel([StructuredReply(
        {"target": "tech", "confidence": confidence, "reason": "it crashes"})])
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = routed(model, LLMClassifier(threshold=0.6)).compile(checkpointer=saver)
        out = ask(graph, "the app closes by itself", "route")
        route = first(saver.audit_log("route"), AuditKind.ROUTE).details()
    assert model.calls == 1
    assert (route["tier"], route["target"], route["confidence"]) == (tier, target, confidence)
    assert route["attempts"] == 1
    assert out["messages"][-1].content == f"{target} answered"
    if tier == "llm":
        assert route["reason"] == "it crashes"
    else:  # the default says why, and what the model would have done
        assert route["reason"] == (f"LLM confidence {confidence:.2f} below 0.60 "
                                   "(suggested tech: it crashes)")


# retries are counted ----------------------------------------------------------------------------
def retried(model: ScriptedChatModel, retry: RetrySpec) -> Workflow:
    """router -> helper (an LLM agent that falls back to ``helper_rules``)."""

    def by_rules(handoff, tools) -> AgentResult:
        return AgentResult("answered by the rules")

    fallback = AgentSpec(id="helper_rules", purpose="Answers by rule", kind="rules",
                         handler=by_rules)
    helper = AgentSpec(id="helper", purpose="Answers", model="small", retry=retry,
                       fallback="helper_rules")
    return (Workflow("retried", router=Router(default="helper"), max_hops=6,
                     models=ModelResolver(models={"*": model}),
                     registry=AgentRegistry([fallback]))
            .agent(helper)
            .transitions({"router": ["helper", "END"], "helper": ["router"]}))


def test_a_transient_model_failure_is_retried_within_the_agent(tmp_path):
    model = ScriptedChatModel([ConnectionError("connection reset"), "answered by the model"])
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = retried(model, RetrySpec(max_attempts=2, initial_interval=0)).compile(
            checkpointer=saver)
        out = ask(graph, "help me", "retry")
        audit = saver.audit_log("retry")
    assert model.calls == 2
    assert out["messages"][-1].content == "answered by the model"
    assert out["outputs"]["helper"]["agent"] == "helper"
    assert not [e for e in audit if e.kind in (AuditKind.FALLBACK, AuditKind.AGENT_FAILED)]
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]


def test_with_one_attempt_the_same_failure_goes_to_the_fallback(tmp_path):
    model = ScriptedChatModel([ConnectionError("connection reset"), "answered by the model"])
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = retried(model, RetrySpec(max_attempts=1, initial_interval=0)).compile(
            checkpointer=saver)
        out = ask(graph, "help me", "retry")
        audit = saver.audit_log("retry")
    assert model.calls == 1
    assert model.remaining == 1  # the answer was never asked for
    assert out["messages"][-1].content == "answered by the rules"
    assert out["outputs"]["helper"]["agent"] == "helper_rules"
    fallback = first(audit, AuditKind.FALLBACK).details()
    assert (fallback["node"], fallback["agent"], fallback["fallback"]) == (
        "helper", "helper", "helper_rules")
    assert fallback["error"] == "ConnectionError: connection reset"


class BadRequest(Exception):
    """A provider's HTTP 400: the same request fails the same way (not transient)."""

    status_code = 400


def test_a_non_transient_model_failure_goes_to_the_fallback_without_a_retry(tmp_path):
    model = ScriptedChatModel([BadRequest("invalid 'messages'"), "answered by the model"])
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = retried(model, RetrySpec(max_attempts=2, initial_interval=0)).compile(
            checkpointer=saver)
        out = ask(graph, "help me", "retry")
        audit = saver.audit_log("retry")
    assert model.calls == 1
    assert out["messages"][-1].content == "answered by the rules"
    assert first(audit, AuditKind.FALLBACK).details()["error"] == (
        "BadRequest: invalid 'messages'")


def test_the_router_does_not_retry_a_non_transient_failure(tmp_path):
    """The router's LLM tier, by contrast, retries only what may succeed on another attempt."""
    model = ScriptedChatModel([BadRequest("invalid 'messages'"),
                               StructuredReply({"target": "tech", "confidence": 0.9,
                                                "reason": "it crashes"})])
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = routed(model, LLMClassifier(threshold=0.6, max_attempts=3)).compile(
            checkpointer=saver)
        ask(graph, "the app closes by itself", "route")
        route = first(saver.audit_log("route"), AuditKind.ROUTE).details()
    assert model.calls == 1
    assert (route["tier"], route["target"], route["attempts"]) == ("default", "triage", 1)
    assert route["reason"] == "LLM answer rejected (BadRequest): invalid 'messages'"


def test_the_router_counts_every_call_of_its_classification(tmp_path):
    model = ScriptedChatModel([
        ConnectionError("connection reset"),
        TimeoutError("read timed out"),
        StructuredReply({"target": "tech", "confidence": 0.9, "reason": "it crashes"}),
    ])
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = routed(model, LLMClassifier(threshold=0.6, max_attempts=3)).compile(
            checkpointer=saver)
        out = ask(graph, "the app closes by itself", "route")
        route = first(saver.audit_log("route"), AuditKind.ROUTE).details()
    assert model.calls == 3
    assert (route["tier"], route["target"], route["attempts"]) == ("llm", "tech", 3)
    assert out["messages"][-1].content == "tech answered"


def test_a_classification_out_of_attempts_goes_to_the_default(tmp_path):
    """The same failures with one attempt fewer: the default decides and says why."""
    model = ScriptedChatModel([ConnectionError("connection reset"), TimeoutError("read timed out"),
                               StructuredReply({"target": "tech", "confidence": 0.9,
                                                "reason": "it crashes"})])
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = routed(model, LLMClassifier(threshold=0.6, max_attempts=2)).compile(
            checkpointer=saver)
        out = ask(graph, "the app closes by itself", "route")
        route = first(saver.audit_log("route"), AuditKind.ROUTE).details()
    assert model.calls == 2
    assert (route["tier"], route["target"], route["attempts"]) == ("default", "triage", 2)
    assert route["reason"].startswith("LLM answer rejected (TimeoutError)")
    assert out["messages"][-1].content == "triage answered"


# typed records ----------------------------------------------------------------------------------
def test_what_a_support_run_records_is_typed(tmp_path):
    db = tmp_path / "accord.db"
    thread = "typed"
    kinds_seen: set[AuditKind] = set()
    with open_saver(f"sqlite:///{db}") as saver:
        graph = build_support(db=SupportDB(tmp_path / "support.db"), use_llm=False).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": thread}}

        def check(expected: ThreadStatus) -> dict[str, Any]:
            record = saver.threads.get(thread)
            assert type(record.status) is ThreadStatus and record.status is expected
            values = graph.get_state(config).values
            for task in values["tasks"].values():
                assert TaskStatus(task["status"]).value == task["status"]
            events = saver.audit_log(thread)
            assert events and all(type(e.kind) is AuditKind for e in events)
            kinds_seen.update(e.kind for e in events)
            return values

        ask(graph, "Please refund invoice INV-1002, I was charged twice", thread)
        values = check(ThreadStatus.INTERRUPTED)
        assert [t["status"] for t in values["tasks"].values()] == [TaskStatus.AWAITING_APPROVAL]
        graph.invoke(Command(resume={"decision": "approve", "by": "alice"}), config)
        check(ThreadStatus.DONE)
        ask(graph, "I want to speak to a manager", thread)
        values = check(ThreadStatus.DONE)
        assert [t["status"] for t in values["tasks"].values()] == [TaskStatus.COMPLETED]
        finished = [e.details()["task"]["status"] for e in saver.audit_log(thread)
                    if e.kind is AuditKind.TASK_FINISHED]
        assert finished == [TaskStatus.COMPLETED] * 2  # the refund, then the manager request
    # what the database itself holds, not only what the saver reads back
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT kind, event FROM accord_audit WHERE thread_id = ?",
                            (thread,)).fetchall()
        [(status,)] = conn.execute("SELECT status FROM accord_threads WHERE thread_id = ?",
                                   (thread,)).fetchall()
    assert rows and all(AuditKind(kind) == json.loads(event)["kind"] for kind, event in rows)
    assert ThreadStatus(status) is ThreadStatus.DONE
    assert {AuditKind.ROUTE, AuditKind.TRANSITION, AuditKind.TOOL_CALL, AuditKind.HUMAN_DECISION,
            AuditKind.TASK_FINISHED} <= kinds_seen
