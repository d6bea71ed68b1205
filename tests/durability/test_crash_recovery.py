"""A process SIGKILLed anywhere in a run leaves its thread resumable.

For each kill point a fresh sandbox runs the example flow through the real `accord` CLI; the
process that reaches the point kills itself with SIGKILL (`crashpoints.py`, installed in the
child only). Then an operator's recovery runs, again through the CLI:

- ``accord resume T`` (no decision) continues from the last checkpoint;
- if it says the thread waits for a decision, ``accord resume T --approve`` (the decision may
  have died with the process);
- if it says the thread is unknown (killed before the request was recorded), the run is
  started again with ``accord run GRAPH MESSAGE --thread T``.

The kill points cover every window of accord's per-step durability: the claim, a step whose
checkpoint the saver holds back, each write transaction just before its commit (the step's
checkpoint and its writes commit together: LangGraph's ``put_writes``/``put`` ordering,
langgraph#8039, cannot open a window), the tool ledger, the interrupt and the run's end.

The final state must equal an uninterrupted run's, every side effect (refund, ticket) must exist
exactly once, the thread index must say ``done``, and no node may run more often than in the
uninterrupted run, except the one step cut short by the kill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

SIGKILLED = -9


@dataclass(frozen=True)
class Flow:
    """One request of the support example and what it leaves behind."""

    message: str
    approve: bool = False
    """The run stops for a refund approval, which `accord resume --approve` gives."""


FLOWS = {
    "approval": Flow("Please refund invoice INV-1002, I was charged twice", approve=True),
    "direct": Flow("refund $40 of INV-1004"),
    "escalation": Flow("I want to speak to a manager"),
    "full_refund": Flow("please refund INV-1001"),
}


@dataclass(frozen=True)
class KillPoint:
    """Where to die: a crash point (``name@n``: its n-th hit) during one CLI command."""

    flow: str
    phase: str
    """``run`` (the first `accord run`) or ``approve`` (`accord resume --approve`)."""
    at: str
    why: str

    @property
    def id(self) -> str:
        return f"{self.flow}-{self.phase}-{self.at}"


POINTS = [
    # refund above the threshold: run -> interrupt ... resume --approve -> done
    KillPoint("approval", "run", "claim:before@1", "before anything is saved"),
    KillPoint("approval", "run", "claim:after@1", "request recorded, no checkpoint yet"),
    KillPoint("approval", "run", "put:after@1", "input checkpoint held back, not written"),
    KillPoint("approval", "run", "route:after@1", "inside the router, after its decision"),
    KillPoint("approval", "run", "tx:commit@1", "router step written, not committed"),
    KillPoint("approval", "run", "put:after@3", "router step written, agent not started"),
    KillPoint("approval", "run", "agent.billing_rules:before@1", "agent step, before its tool call"),
    KillPoint("approval", "run", "tool.get_invoice:after@1", "agent step, tool ran, not recorded"),
    KillPoint("approval", "run", "ledger:after@1", "tool result recorded, step not saved"),
    KillPoint("approval", "run", "put:before@4", "agent done, its checkpoint not handed over"),
    KillPoint("approval", "run", "decision:before@1", "approval node, before its interrupt"),
    KillPoint("approval", "run", "end:before@1", "interrupt held back, index says running"),
    KillPoint("approval", "run", "tx:commit@3", "interrupt and status written, not committed"),
    KillPoint("approval", "approve", "claim:after@1", "the decision dies before it is written"),
    KillPoint("approval", "approve", "writes:after@1", "decision handed over, held back"),
    KillPoint("approval", "approve", "ledger:after@1", "decision recorded, action not run"),
    KillPoint("approval", "approve", "decision:after@1", "approval node, decision read, no refund"),
    KillPoint("approval", "approve", "refund:before@1", "approval node, just before the refund"),
    KillPoint("approval", "approve", "refund:after@1", "refund committed, not recorded"),
    KillPoint("approval", "approve", "ledger:after@2", "refund recorded in memory only"),
    KillPoint("approval", "approve", "end:before@1", "finished, last step held back"),
    KillPoint("approval", "approve", "tx:commit@2", "last step and status written, not committed"),
    # small refund, no approval: the side effect happens inside the agent step
    KillPoint("direct", "run", "refund:before@1", "agent step, before the refund"),
    KillPoint("direct", "run", "refund:after@1", "agent step, refund committed, step not saved"),
    KillPoint("direct", "run", "end:before@1", "agent step done, held back for the end"),
    # escalation: the human-triage node opens a ticket
    KillPoint("escalation", "run", "ticket:after@1", "ticket committed, step not saved"),
    KillPoint("escalation", "run", "end:before@1", "triage done, held back for the end"),
]

REREAD_AFTER_REFUND = pytest.param(
    KillPoint("full_refund", "run", "refund:after@1", "agent step reads, refunds, dies, re-runs"),
    # The re-run step gets the invoice it read the first time from the tool ledger, so it
    # replies as the uninterrupted run did, and the refund itself is not repeated.
    id="full_refund-run-refund:after@1",
)

TIMESTAMPS = {"at", "created_at", "updated_at"}
KEYS = {"key"}
"""Idempotency keys in task records (a decision's): derived from the task id, like it."""
SIDE_EFFECT_TOOLS = {"issue_refund", "create_ticket", "send_password_reset"}


def normalized(shown: dict[str, Any]) -> dict[str, Any]:
    """The state `accord show --json` prints, without timestamps, ids and checkpoint history."""
    task_ids = list((shown.get("tasks") or {}).keys())

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items() if k not in TIMESTAMPS | KEYS}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            for task_id in task_ids:
                value = value.replace(task_id, "<task>")
        return value

    keep = ("status", "reply", "interrupt", "error", "next", "tasks", "outputs", "context",
            "errors", "messages")
    state = clean({key: shown.get(key) for key in keep})
    # The audit trail as a sequence of decisions. A step re-run after a crash re-reads the
    # world, so what a read-only tool returned may differ (an invoice's `refunded` total).
    state["audit"] = [
        tuple(event.get(k) for k in ("kind", "node", "target", "tool", "decision", "result"))
        if event["kind"] != "tool_call" or event.get("tool") in SIDE_EFFECT_TOOLS
        else (event["kind"], event["node"], event["tool"])
        for event in clean(shown.get("audit") or [])
    ]
    return state


def side_effects(box) -> dict[str, list[dict[str, Any]]]:
    """Refund and ticket rows, without their per-thread idempotency keys and timestamps."""
    effects = {}
    for table in ("refunds", "tickets"):
        rows = box.rows(table)
        keys = [row["idempotency_key"] for row in rows]
        assert len(keys) == len(set(keys))
        effects[table] = [{k: v for k, v in row.items() if k not in ("idempotency_key", "created_at")}
                          for row in rows]
    return effects


def approve(box, thread: str) -> dict[str, Any]:
    result = box.accord("resume", thread, "--approve", "--json")
    assert result.code == 0, result.err
    return result.json()


def recover(box, flow: Flow, thread: str) -> list[str]:
    """What an operator does after a crash, until the thread is done; the commands it took."""
    taken: list[str] = []
    for _ in range(6):
        result = box.accord("resume", thread, "--json")
        taken.append(f"resume -> {result.code}")
        if result.code == 0:
            status = result.json()["status"]
            if status == "done":
                return taken
            assert status == "interrupted" and flow.approve, result.out
        elif "waiting for a decision" in result.err:
            assert flow.approve, result.err
            # the index is set right even if the crash came before the run recorded the interrupt
            assert box.index_status(thread) == "interrupted"
        elif "is finished" in result.err:
            return taken
        elif re.search(r"unknown thread|no saved checkpoint", result.err):
            rerun = box.accord("run", "support", flow.message, "--thread", thread, "--json")
            taken.append(f"run -> {rerun.code}")
            assert rerun.code == 0, rerun.err
            if rerun.json()["status"] == "done":
                return taken
            continue
        else:
            pytest.fail(f"unexpected answer to accord resume: {result.code} {result.err}")
        outcome = approve(box, thread)
        taken.append("approve")
        if outcome["status"] == "done":
            return taken
    pytest.fail(f"thread {thread} not done after {taken}")


def run_flow(box, flow: Flow, thread: str, *, crash: KillPoint | None = None) -> None:
    """The flow through the CLI, optionally killed at a point; returns once the thread is done."""
    at_run = crash.at if crash is not None and crash.phase == "run" else None
    first = box.accord("run", "support", flow.message, "--thread", thread, "--json", crash_at=at_run)
    if at_run is not None:
        assert first.code == SIGKILLED, f"never reached {at_run}: {first.code} {first.err}"
        return
    assert first.code == 0, first.err
    if not flow.approve:
        return
    assert first.json()["status"] == "interrupted"
    at_approve = crash.at if crash is not None else None
    second = box.accord("resume", thread, "--approve", "--json", crash_at=at_approve)
    if at_approve is not None:
        assert second.code == SIGKILLED, f"never reached {at_approve}: {second.code} {second.err}"
        return
    assert second.code == 0, second.err


@dataclass
class Outcome:
    state: dict[str, Any]
    effects: dict[str, list[dict[str, Any]]]
    node_runs: dict[str, int]


_baselines: dict[tuple[str, str], Outcome] = {}


def baseline(new_sandbox, backend: str, name: str) -> Outcome:
    """An uninterrupted run of the flow (once per backend and flow)."""
    if (backend, name) not in _baselines:
        box = new_sandbox()
        run_flow(box, FLOWS[name], "t-base")
        _baselines[backend, name] = Outcome(normalized(box.show("t-base")), side_effects(box),
                                            dict(box.node_runs()))
    return _baselines[backend, name]


def test_uninterrupted_flows_have_their_side_effects(new_sandbox, backend):
    """The baselines themselves: one refund each for the refund flows, one ticket for escalation."""
    base = {name: baseline(new_sandbox, backend, name) for name in FLOWS}
    seeded = len(base["escalation"].effects["refunds"])
    assert len(base["approval"].effects["refunds"]) == seeded + 1
    assert base["approval"].effects["refunds"][-1]["amount"] == 480.0
    assert len(base["direct"].effects["refunds"]) == seeded + 1
    assert base["direct"].effects["refunds"][-1]["amount"] == 40.0
    assert len(base["escalation"].effects["tickets"]) == len(base["direct"].effects["tickets"]) + 1
    for outcome in base.values():
        assert outcome.state["status"] == "done"
        assert [t["status"] for t in outcome.state["tasks"].values()] == ["completed"]


@pytest.mark.parametrize("point", [*POINTS, REREAD_AFTER_REFUND], ids=lambda p: p.id)
def test_sigkill_then_resume_equals_uninterrupted_run(new_sandbox, backend, point: KillPoint):
    flow = FLOWS[point.flow]
    expected = baseline(new_sandbox, backend, point.flow)
    box = new_sandbox()
    thread = "t-crash"

    run_flow(box, flow, thread, crash=point)
    assert box.killed_at() == [point.at.replace("@", " ")]
    taken = recover(box, flow, thread)

    assert normalized(box.show(thread)) == expected.state, f"recovery took {taken}"
    assert side_effects(box) == expected.effects, f"recovery took {taken}"
    assert box.index_status(thread) == "done"
    runs = box.node_runs()
    extra = {node: runs[node] - expected.node_runs.get(node, 0) for node in runs}
    assert all(n >= 0 for n in extra.values()), extra
    assert sum(extra.values()) <= 1, f"completed steps were re-run: {extra} (recovery {taken})"
