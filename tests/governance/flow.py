"""A small desk workflow with several versions of one agent, for the governance tests.

``helper`` answers with its version; a request naming "pay" proposes the ``pay`` tool, which a
human approves above 10. ``backup`` is helper's declared fallback. The factories differ only in
which versions of ``helper`` are deployed and which one the workflow declares (its stable
version); the CLI loads them as ``flow.py:build_v1`` and so on.
"""

from __future__ import annotations

import re

from langchain_core.tools import tool

from accord.agents import AgentRegistry, AgentResult, AgentSpec, ApprovalPolicy
from accord.graphs import KeywordRule, Router, Workflow


@tool
def pay(amount: int, idempotency_key: str = "") -> str:
    """Pay an amount."""
    return f"paid {amount}"


def _helper(version: str):
    def handler(handoff, tools):
        if handoff.query.startswith("boom"):
            raise RuntimeError(f"helper {version} broke")
        found = re.search(r"pay (\d+)", handoff.query)
        if found:
            args = {"amount": int(found.group(1))}
            action = tools.gate("pay", args)
            if action:
                return AgentResult(f"{version}: payment needs approval", status="needs_approval",
                                   action=action)
            return AgentResult(f"{version}: {tools('pay', **args)}")
        return AgentResult(f"helper {version} answered")

    return handler


def backup(handoff, tools):
    return AgentResult("backup answered")


def helper_spec(version: str, **extra) -> AgentSpec:
    return AgentSpec(id="helper", version=version, purpose="Helps", kind="rules",
                     handler=_helper(version), tools=("pay",), fallback="backup",
                     responsibilities=("help",), **extra)


BACKUP = AgentSpec(id="backup", purpose="Backs the helper up", kind="rules", handler=backup)


def build(versions: tuple[str, ...] = ("1.0.0",), declared: str = "1.0.0") -> Workflow:
    registry = AgentRegistry([*(helper_spec(v) for v in versions), BACKUP])
    return (
        Workflow("desk", router=Router(default="helper", rules=(
                     KeywordRule("triage", ("human",)),)),
                 max_hops=8, error_node="triage", registry=registry, tools=[pay],
                 approvals=[ApprovalPolicy("pay", approval_node="approve_pay",
                                           when=lambda args: args["amount"] > 10)])
        .agent(registry.get("helper", declared))
        .approval("approve_pay")
        .node("triage", lambda state: _triage(state))
        .transitions({
            "router": ["helper", "triage", "END"],
            "helper": ["router", "approve_pay"],
            "approve_pay": ["router"],
            "triage": ["END"],
        })
    )


def _triage(state):
    from accord.graphs import Step

    return Step("END", {"tasks": {state["active_task"]: {"status": "completed",
                                                         "result": "triaged"}}})


def build_v1() -> Workflow:
    return build(("1.0.0",), "1.0.0")


def build_v2() -> Workflow:
    """The next release: helper 1.1.0 only (1.0.0 is no longer deployed)."""
    return build(("1.1.0",), "1.1.0")


def build_canary() -> Workflow:
    """helper 1.0.0 stable, 1.1.0 deployed beside it for a canary."""
    return build(("1.0.0", "1.1.0"), "1.0.0")


def build_clerk() -> Workflow:
    """A later release that routes to ``clerk``: helper stays registered, no longer used."""
    registry = AgentRegistry([helper_spec("1.0.0"), BACKUP])
    clerk = registry.register(AgentSpec(id="clerk", purpose="Clerks", kind="rules",
                                        handler=lambda h, t: AgentResult("clerk answered")))
    return (
        Workflow("desk", router=Router(default="clerk"), max_hops=8, registry=registry)
        .agent(clerk)
        .transitions({"router": ["clerk", "END"], "clerk": ["router"]})
    )
