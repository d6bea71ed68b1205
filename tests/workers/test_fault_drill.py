"""The workers' fault drill (``benchmarks/faults.py``, ``make faults``) at CI size, and the
recoveries it asks of the queue: threads through the runs API on four real workers while
workers are SIGKILLed and restarted, one worker's database sessions are terminated and, where
the machine allows network namespaces, one worker's network is cut and restored."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg
import pytest

from accord.workers.app import RESUME_TASK, RUN_TASK, WorkerSettings, make_app
from accord.workers.jobs import register_jobs
from accord.workers.periodic import requeue_stalled

ROOT = Path(__file__).resolve().parents[2]


def _drill_module():
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import faults
    finally:
        sys.path.remove(str(ROOT))
    return faults


@pytest.mark.timeout(900)
def test_threads_survive_killed_workers_dropped_sessions_and_a_cut_network(queue_url,
                                                                          tmp_path) -> None:
    faults = _drill_module()
    spec = faults.DrillSpec(url=queue_url, threads=60, workers=4, slots=4, in_flight=24,
                            kills=4, terminations=1, cut_seconds=4.0, seed=11, timeout=600)
    report = asyncio.run(faults.Drill(spec, tmp_path).run())

    assert report.lost == [] and report.submitted == 60
    assert report.done + report.dead_lettered == 60 and report.failed_without_letter == 0
    assert report.duplicates == {} and report.missing == []
    assert report.forks == 0
    assert report.count("kill") == 4 and report.count("restart") == 4
    assert report.count("terminate") == 1 and report.sessions_terminated >= 1
    assert report.count("died") == 0, [f.detail for f in report.faults if f.kind == "died"]
    if faults.Netns.available() is None:
        assert report.count("cut") == 1 and report.count("restore") == 1
        assert "cut off" in report.netns
    text = faults.markdown(report, None)
    assert "**Verdict: passed.**" in text and "| **lost** | **0** |" in text


def test_a_stalled_job_whose_thread_has_a_job_waiting_is_finished_and_the_round_goes_on(
        queue_url) -> None:
    """A worker falls silent while running a thread's job and a decision for that thread is
    already queued: the stalled job cannot go back to the queue beside it, so it is finished
    (the queued job carries the thread on); the other stalled jobs are requeued as usual."""

    async def go() -> dict[int, str]:
        app = make_app(queue_url)
        register_jobs(app, WorkerSettings())
        async with app.open_async():
            silent = await app.job_manager.register_worker()
            run_a = await app.configure_task(RUN_TASK, lock="a", queueing_lock="a").defer_async(
                graph="support", thread_id="a", payload={"messages": []})
            run_b = await app.configure_task(RUN_TASK, lock="b", queueing_lock="b").defer_async(
                graph="support", thread_id="b", payload={"messages": []})
            taken = {(await app.job_manager.fetch_job(queues=None, worker_id=silent)).id
                     for _ in range(2)}
            assert taken == {run_a, run_b}
            decision = await app.configure_task(RESUME_TASK, lock="a",
                                                queueing_lock="a").defer_async(
                thread_id="a", resume={"decisions": [{"type": "approve"}]})
            async with await psycopg.AsyncConnection.connect(queue_url,
                                                             autocommit=True) as conn:
                await conn.execute("UPDATE procrastinate_workers SET last_heartbeat = "
                                   "now() - interval '1 hour' WHERE id = %s", (silent,))
            requeued = await requeue_stalled(app, WorkerSettings(stalled_after=5))
            assert requeued == [run_b]
            async with await psycopg.AsyncConnection.connect(queue_url,
                                                             autocommit=True) as conn:
                rows = await (await conn.execute(
                    "SELECT id, status FROM procrastinate_jobs WHERE id = ANY(%s)",
                    ([run_a, run_b, decision],))).fetchall()
            return dict(rows)

    statuses = asyncio.run(go())
    run_a, run_b, decision = sorted(statuses)
    assert statuses[run_a] == "failed"
    assert statuses[run_b] == "todo"
    assert statuses[decision] == "todo"
