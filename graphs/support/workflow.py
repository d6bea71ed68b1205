"""The example workflow: customer support for a small software company.

The router delegates to billing (invoices, refunds; a refund above a threshold needs a human's
approval), technical support and account agents, with an escalation path to a human. Each
agent has an LLM version and a rule-based version; without ``OPENAI_API_KEY`` the rule-based
ones run. ``make_graph`` is the factory ``langgraph.json`` exports (compiled without a
checkpointer: the server lends one).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from accord.agents.actions import ApprovalPolicy, idempotency_key
from accord.agents.models import ModelResolver, llm_available
from accord.agents.registry import AgentRegistry
from accord.agents.spec import load_specs
from accord.graphs.builder import Workflow
from accord.graphs.router import KeywordRule, LLMClassifier, PatternRule, Router
from accord.graphs.state import latest_request, thread_id
from accord.graphs.support.db import SupportDB, support_tools
from accord.graphs.transitions import Step
from accord.guardrails import MaxInputLength, OffTopic, PromptInjection, RedactPII
from accord.guardrails.limits import Limits, load_limits
from accord.records import AuditKind, TaskStatus, audit_event, utcnow

ROUTER, BILLING, TECH, ACCOUNT = "router", "billing", "tech", "account"
REFUND_APPROVAL, HUMAN_TRIAGE = "refund_approval", "human_triage"
REFUND_THRESHOLD = float(os.environ.get("ACCORD_REFUND_THRESHOLD", "100"))

TRANSITIONS: dict[str, list[str]] = {
    ROUTER: [BILLING, TECH, ACCOUNT, HUMAN_TRIAGE, "END"],
    BILLING: [ROUTER, REFUND_APPROVAL],
    TECH: [ROUTER],
    ACCOUNT: [ROUTER],
    REFUND_APPROVAL: [ROUTER],
    HUMAN_TRIAGE: ["END"],
}

RULES = (
    KeywordRule(HUMAN_TRIAGE, ("human", "manager", "lawyer", "complaint", "speak to someone")),
    KeywordRule(BILLING, ("refund", "invoice", "invoices", "charged", "charge", "billing", "payment", "receipt")),
    PatternRule(BILLING, r"\bINV-\d{4}\b"),
    KeywordRule(ACCOUNT, ("password", "log in", "login", "locked out", "plan", "upgrade", "downgrade",
                          "cancel", "subscription", "account")),
    KeywordRule(TECH, ("error", "crash", "crashes", "bug", "slow", "sync", "2fa", "broken", "freezes")),
)

DESCRIPTIONS = {
    BILLING: "invoices, charges, payments and refunds",
    TECH: "product problems: errors, crashes, sync, performance, two-factor codes",
    ACCOUNT: "logins, password resets, plans, upgrades and cancellations",
    HUMAN_TRIAGE: "anything else, complaints, or when a human is asked for",
}


def support_guardrails() -> tuple[Any, ...]:
    """The support graph's input guardrails: size, injections, off-topic requests (the
    routing keywords are its subjects), and PII redaction."""
    subjects = tuple(word for rule in RULES if isinstance(rule, KeywordRule) for word in rule.keywords)
    return (MaxInputLength(), PromptInjection(), OffTopic(subjects=subjects), RedactPII())


def spec_file() -> Path:
    return Path(str(resources.files("accord.graphs.support").joinpath("specs/support_agents.yaml")))


def mode_line(use_llm: bool | None = None) -> str:
    use_llm = llm_available() if use_llm is None else use_llm
    if use_llm:
        base = os.environ.get("OPENAI_BASE_URL", "api.openai.com")
        return f"support: LLM agents (OpenAI-compatible endpoint {base}), rule-based fallbacks"
    return "support: no OPENAI_API_KEY, running the rule-based agents"


def human_triage(db: SupportDB) -> Any:
    """Escalation: open a ticket for the human team and tell the customer."""

    def triage(state: dict[str, Any]) -> Step:
        request = latest_request(state)
        task_id = state.get("active_task") or (request.id if request else "")
        text = request.text if request else ""
        errors = state.get("errors") or []
        why = errors[-1]["error"] if errors and errors[-1].get("node") != HUMAN_TRIAGE else "needs a human"
        ticket = db.ticket(None, "Escalated request", f"{text}\n\n(reason: {why})", "escalations",
                           idempotency_key(thread_id(), task_id, "escalate"))
        reply = f"I've passed this to our support team (ticket #{ticket['id']}); a person will reply soon."
        return Step("END", {
            "tasks": {task_id: {"status": TaskStatus.COMPLETED.value, "updated_at": utcnow(),
                                "result": reply}},
            "messages": [AIMessage(reply, name=HUMAN_TRIAGE)],
            "audit": [audit_event(AuditKind.ESCALATED, node=HUMAN_TRIAGE, task_id=task_id,
                                  ticket=ticket["id"], reason=why)],
        })

    return triage


def build_support(
    *,
    db: SupportDB | str | None = None,
    models: ModelResolver | None = None,
    use_llm: bool | None = None,
    refund_threshold: float = REFUND_THRESHOLD,
    max_hops: int = 12,
    middleware: Mapping[str, Sequence[Any]] | None = None,
    input_guardrails: Sequence[Any] | None = None,
    limits: Limits | None = None,
) -> Workflow:
    """The support workflow, ready to ``compile(checkpointer=...)``.

    ``middleware`` maps an agent node (billing, tech, account) to langchain middleware for its
    LLM agent's own loop; ``input_guardrails`` replaces :func:`support_guardrails`; ``limits``
    (else the YAML file ``ACCORD_LIMITS`` names, if set) adds rate limits and budgets.
    """
    if limits is None and os.environ.get("ACCORD_LIMITS"):
        limits = load_limits(os.environ["ACCORD_LIMITS"])
    db = db if isinstance(db, SupportDB) else SupportDB(db)
    use_llm = llm_available() if use_llm is None else use_llm
    registry = AgentRegistry(load_specs(spec_file()))
    suffix = "" if use_llm else "_rules"
    router = Router(
        default=HUMAN_TRIAGE,
        rules=RULES,
        classifier=LLMClassifier(threshold=0.6) if use_llm else None,
        descriptions=DESCRIPTIONS,
    )
    workflow = Workflow(
        "support",
        router=router,
        max_hops=max_hops,
        error_node=HUMAN_TRIAGE,
        tools=support_tools(db),
        approvals=[
            ApprovalPolicy(
                tool="issue_refund",
                approval_node=REFUND_APPROVAL,
                when=lambda args: float(args.get("amount", 0)) > refund_threshold,
                risk="high",
                description=f"refunds above ${refund_threshold:.0f} need a manager",
            )
        ],
        models=models,
        registry=registry,
        input_guardrails=support_guardrails() if input_guardrails is None else input_guardrails,
        limits=limits,
    )
    for node in (BILLING, TECH, ACCOUNT):
        workflow.agent(registry.get(node + suffix), node=node, middleware=(middleware or {}).get(node, ()))
    workflow.approval(REFUND_APPROVAL)
    workflow.node(HUMAN_TRIAGE, human_triage(db))
    return workflow.transitions(TRANSITIONS)


@functools.cache
def make_graph() -> Any:
    """The support graph for ``langgraph dev`` / the Agent Server (they lend the checkpointer).

    ``langgraph.json`` names this factory, so nothing is built when the module is imported;
    the graph is built once, on the server's first request.
    """
    return build_support().compile()
