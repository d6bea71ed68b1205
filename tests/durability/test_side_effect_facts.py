"""Side effects are facts, not guesses: real `accord` processes on SQLite and PostgreSQL.

- The approval decision is durable before its action runs. A process SIGKILLed after the refund
  left and before the approval step's checkpoint finishes the approved refund from the ledger
  on `accord resume`, without asking again; a reject or an edit sent meanwhile is refused (the
  money already left), never recorded as if it applied; a later resume sees the thread done.
- An approved action that fails (here: a refund that exceeds what is left on the invoice) ends
  its task and its thread ``failed`` with the reason, exit code 1, shown as failed by
  `accord show` and `accord threads`. Twenty approvals released at one instant on one invoice
  never pay more than the invoice.
"""

from __future__ import annotations

import json

import pytest

SIGKILLED = -9

REFUND = "Please refund invoice INV-1002, I was charged twice"
INVOICE_TOTAL = 480.0


@pytest.mark.parametrize("at", ["refund:after@1", "tool.issue_refund:after@1", "put:after@1"])
def test_a_kill_after_the_refund_left_finishes_it_and_refuses_a_new_decision(new_sandbox, at):
    box = new_sandbox()
    first = box.accord("run", "support", REFUND, "--thread", "t-paid", "--json")
    assert first.code == 0 and first.json()["status"] == "interrupted", first.err
    killed = box.accord("resume", "t-paid", "--approve", "--by", "alice", "--json", crash_at=at)
    assert killed.code == SIGKILLED
    [paid] = [r for r in box.rows("refunds") if r["invoice_id"] == "INV-1002"]
    assert paid["amount"] == INVOICE_TOTAL

    # the decision is recorded: the thread does not wait for another one
    assert box.index_status("t-paid") == "running"
    waiting = box.accord("threads", "--status", "interrupted", "--json")
    assert "t-paid" not in {row["thread_id"] for row in waiting.json()}
    for argv in (("--reject", "changed my mind"), ("--edit", json.dumps({"amount": 10}))):
        refused = box.accord("resume", "t-paid", *argv, "--by", "bob", "--json")
        assert refused.code == 2, refused.out
        assert "already has a decision (approve by alice)" in refused.err
        assert "Traceback" not in refused.err

    finished = box.accord("resume", "t-paid", "--json")
    assert finished.code == 0, finished.err
    outcome = finished.json()
    assert outcome["status"] == "done"
    assert outcome["reply"] == "Refunded $480.00 on INV-1002 (refund #1), approved by alice."
    again = box.accord("resume", "t-paid", "--json")
    assert again.code == 2 and "is finished" in again.err

    shown = box.show("t-paid")
    decisions = [e for e in shown["audit"] if e["kind"] == "human_decision"]
    assert [(d["decision"], d["by"]) for d in decisions] == [("approve", "alice")]
    assert decisions[0]["result"]["refund_id"] == paid["id"]
    assert [t["status"] for t in shown["tasks"].values()] == ["completed"]
    assert [r["amount"] for r in box.rows("refunds") if r["invoice_id"] == "INV-1002"] == [
        INVOICE_TOTAL]


def test_twenty_concurrent_approvals_on_one_invoice_never_pay_more_than_it(new_sandbox):
    box = new_sandbox()
    threads = [f"t-{n:02d}" for n in range(20)]
    started = box.batch([box.job("run", "support", "Please refund $150 of INV-1002", "--thread",
                                 t, "--json") for t in threads])
    assert all(r.code == 0 and r.json()["status"] == "interrupted" for r in started), [
        (r.code, r.err) for r in started if r.code]

    approved = box.batch([box.job("resume", t, "--approve", "--json") for t in threads],
                         together=True)
    paid = [r for r in box.rows("refunds") if r["invoice_id"] == "INV-1002"]
    assert sum(r["amount"] for r in paid) <= INVOICE_TOTAL
    assert len(paid) == 3  # 3 x 150 fit in 480; the fourth would exceed what is left
    codes = sorted(r.code for r in approved)
    assert codes == [0] * 3 + [1] * 17, [(r.code, r.err[-300:]) for r in approved if r.code > 1]

    outcomes = {t: r.json() for t, r in zip(threads, approved, strict=True)}
    done = {t for t, o in outcomes.items() if o["status"] == "done"}
    failed = {t for t, o in outcomes.items() if o["status"] == "failed"}
    assert len(done) == 3 and len(failed) == 17
    for outcome in (outcomes[t] for t in failed):
        assert "approved but failed" in outcome["error"]
        assert "exceeds what is left on INV-1002" in outcome["error"]

    listed = box.accord("threads", "--status", "failed", "--json", "--limit", "100")
    assert {row["thread_id"] for row in listed.json()} == failed
    one = sorted(failed)[0]
    shown = box.show(one)
    assert shown["status"] == "failed" and "exceeds what is left" in shown["error"]
    assert [t["status"] for t in shown["tasks"].values()] == ["failed"]
    kinds = [e["kind"] for e in shown["audit"]]
    assert "action_failed" in kinds and kinds[-2:] == ["run_failed", "dead_lettered"]
    text = box.accord("show", one)
    assert text.code == 0 and f"{one} (support) failed" in text.out
