"""Issue 3 §4: one writer per thread, tested with real concurrent processes.

100 threads wait for a refund approval. For each, two `accord resume T --approve --json`
processes are released at the same instant (a barrier in the fork server). Exactly one may
proceed; the other must fail with a clear ThreadBusy line (``error: thread 'T' is busy``, exit
2) or, if it only got the lock after the winner finished, find nothing left to approve. After
all attempts every thread's checkpoint history is one linear chain (no checkpoint forked, none
lost) and every approved refund happened exactly once.
"""

from __future__ import annotations

from typing import Any

from accord.checkpoints import open_saver

ATTEMPTS = 100
PER_BATCH = 4
"""Threads prepared, or raced, per batch of concurrent processes."""
MESSAGE = "Please refund invoice INV-1002, I was charged twice"


def support_of(thread: str) -> str:
    """Each thread refunds INV-1002 in its own sample-company database (it can be refunded once)."""
    return f"support-{thread}.db"


def history(url: str, thread: str) -> list[Any]:
    with open_saver(url) as saver:
        return list(saver.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}))


def assert_linear(checkpoints: list[Any]) -> None:
    """One root, and each checkpoint's parent is the one before it: no fork, no gap."""
    ids = sorted(c.config["configurable"]["checkpoint_id"] for c in checkpoints)
    parents = {
        c.config["configurable"]["checkpoint_id"]: (c.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        for c in checkpoints
    }
    assert [parents[i] for i in ids] == [None, *ids[:-1]]


def test_two_processes_resuming_one_thread(new_sandbox):
    box = new_sandbox()
    threads = [f"t-{i:03d}" for i in range(ATTEMPTS)]

    for start in range(0, ATTEMPTS, PER_BATCH):
        batch = threads[start:start + PER_BATCH]
        jobs = [box.job("run", "support", MESSAGE, "--thread", t, "--json", support=support_of(t))
                for t in batch]
        for result in box.batch(jobs):
            assert result.code == 0, result.err
            assert result.json()["status"] == "interrupted"
    before = {t: len(history(box.url, t)) for t in threads[:1]}

    outcomes = {"busy": 0, "late": 0}
    for start in range(0, ATTEMPTS, PER_BATCH // 2):
        batch = threads[start:start + PER_BATCH // 2]
        jobs = [box.job("resume", t, "--approve", "--json", support=support_of(t))
                for t in batch for _ in range(2)]
        results = box.batch(jobs, together=True)
        for i, thread in enumerate(batch):
            pair = results[2 * i:2 * i + 2]
            winners = [r for r in pair if r.code == 0]
            assert len(winners) == 1, [(r.code, r.err) for r in pair]
            assert winners[0].json()["status"] == "done"
            loser = next(r for r in pair if r.code != 0)
            assert loser.code == 2, loser.err
            assert loser.err.count("\n") == 1 and loser.err.startswith("error: "), loser.err
            if f"thread {thread!r} is busy" in loser.err:
                outcomes["busy"] += 1
            else:
                assert f"thread {thread!r} is finished; it is not waiting for a decision" in loser.err
                outcomes["late"] += 1
    # the barrier makes the two processes really race: losers meet the held lock, not only a
    # finished thread (how many do depends on how long a resume holds it on a loaded machine)
    assert outcomes["busy"] >= ATTEMPTS // 10, outcomes

    index = {row["thread_id"]: row["status"] for row in box.accord("threads", "--json", "--limit", "1000").json()}
    lengths = set()
    for thread in threads:
        checkpoints = history(box.url, thread)
        assert_linear(checkpoints)
        lengths.add(len(checkpoints))
        with open_saver(box.url) as saver:
            audit = saver.audit_log(thread)
        assert [e.details()["decision"] for e in audit if e.kind == "human_decision"] == ["approve"]
        refunds = [r for r in box.rows("refunds", support_of(thread)) if r["invoice_id"] == "INV-1002"]
        assert [r["amount"] for r in refunds] == [480.0]
        assert index[thread] == "done"
    # every thread took the same path: same number of checkpoints, more than before approving
    assert len(lengths) == 1 and lengths.pop() > before[threads[0]]
