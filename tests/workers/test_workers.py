"""accord's workers: threads run and resumed by ``accord worker`` processes over PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from accord.checkpoints import open_saver
from accord.graphs.catalog import load_workflow
from accord.graphs.support import SupportDB
from accord.records import ThreadStatus
from accord.workers.errors import AlreadyQueued, BadSubmission, SchemaMissing
from accord.workers.queue import WorkerQueue

BIG_REFUND = "I was charged twice for INV-1004. Please refund $150."
SMALL = "My app crashes when I export a PDF"
APPROVE = {"decisions": [{"type": "approve"}], "by": "manager"}
GATED = str(Path(__file__).with_name("gated.py")) + ":build"


def request(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def submit(url: str, **kwargs) -> int:
    async def go() -> int:
        async with WorkerQueue(url) as queue:
            return await queue.submit(**kwargs)
    return asyncio.run(go())


def statuses(url: str, threads: list[str]) -> dict[str, ThreadStatus | None]:
    with open_saver(url) as saver:
        return {t: (r.status if (r := saver.threads.get(t)) else None) for t in threads}


def forks(url: str, thread_id: str) -> list:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT parent_checkpoint_id, count(*) FROM checkpoints WHERE thread_id = %s "
            "AND checkpoint_ns = '' GROUP BY 1 HAVING count(*) > 1", (thread_id,)).fetchall()


def job_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT task_name, lock, status, attempts FROM procrastinate_jobs "
                            "WHERE task_name LIKE 'accord.%%thread' ORDER BY id").fetchall()


def refunds(env: dict[str, str]) -> list:
    return SupportDB(env["ACCORD_SUPPORT_DB"]).refunds("INV-1004")


def spans(workers) -> dict[str, list[tuple[datetime, datetime, int]]]:
    """Per thread, the (start, end, pid) of every job a worker ran on it."""
    found: dict[str, list] = {}
    for worker in workers:
        open_jobs = {}
        for event in worker.events():
            key = event.get("job_id")
            if event.get("event", "").startswith("job started"):
                open_jobs[key] = datetime.fromisoformat(event["timestamp"])
            elif event.get("event", "").startswith(("job finished", "job refused")):
                found.setdefault(event["thread_id"], []).append(
                    (open_jobs.pop(key), datetime.fromisoformat(event["timestamp"]),
                     event["pid"]))
    return found


def test_two_workers_run_every_request_once_at_a_time(queue_url, spawn, worker_env, wait_for):
    workers = [spawn(queue_url, "--concurrency", "3"), spawn(queue_url, "--concurrency", "3")]
    big = [f"big-{i}" for i in range(4)]
    small = [f"small-{i}" for i in range(4)]
    for thread in big:
        submit(queue_url, graph="support", thread_id=thread, payload=request(BIG_REFUND))
    for thread in small:
        submit(queue_url, graph="support", thread_id=thread, payload=request(SMALL), user="ann")
    expected = {**dict.fromkeys(big, ThreadStatus.INTERRUPTED),
                **dict.fromkeys(small, ThreadStatus.DONE)}
    wait_for(lambda: statuses(queue_url, list(expected)) == expected, "every thread to settle")
    wait_for(lambda: all(s == "succeeded" for _, _, s, _ in job_rows(queue_url)),
             "every job to succeed")
    ran = spans(workers)
    assert sorted(ran) == sorted(expected)
    for thread, jobs in ran.items():
        assert len(jobs) == 1, (thread, jobs)  # one job, one worker, no retry
        assert forks(queue_url, thread) == []
    assert not refunds(worker_env)  # nothing refunded before approval
    # the big refunds resumed through the queue: each refunded once
    for thread in big:
        submit(queue_url, graph="support", thread_id=thread, resume=APPROVE)
    wait_for(lambda: set(statuses(queue_url, big).values()) == {ThreadStatus.DONE},
             "the approved threads to finish")
    wait_for(lambda: all(s == "succeeded" for _, _, s, _ in job_rows(queue_url)),
             "the resume jobs to end (a job logs its end after its thread's)")
    assert len(refunds(worker_env)) == len(big)
    assert {r["amount"] for r in refunds(worker_env)} == {150.0}
    ran = spans(workers)
    for thread in big:
        (a_start, a_end, _), (b_start, _, _) = sorted(ran[thread])
        assert a_end <= b_start  # the thread's two jobs never overlapped
        assert forks(queue_url, thread) == []


def test_submission_errors(queue_url):
    with pytest.raises(BadSubmission):
        submit(queue_url, graph="support", thread_id="t", payload=request(SMALL), resume=APPROVE)
    with pytest.raises(BadSubmission):
        submit(queue_url, graph="support", thread_id="t")

    async def twice_and_cancel() -> bool:
        async with WorkerQueue(queue_url) as queue:
            await queue.submit(graph="support", thread_id="q", payload=request(SMALL))
            with pytest.raises(AlreadyQueued):
                await queue.submit(graph="support", thread_id="q", payload=request(SMALL))
            return await queue.cancel("q") and not await queue.cancel("q")

    assert asyncio.run(twice_and_cancel())
    assert [row[2] for row in job_rows(queue_url)] == ["cancelled"]


def test_user_errors_fail_without_retry_and_done_threads_are_noops(queue_url, spawn, wait_for):
    worker = spawn(queue_url)
    submit(queue_url, graph="no-such-graph", thread_id="bad-graph", payload=request(SMALL))
    submit(queue_url, graph="support", thread_id="bad-input", payload={"nope": 1})
    submit(queue_url, graph="support", thread_id="never-ran", resume=APPROVE)
    submit(queue_url, graph="support", thread_id="fine", payload=request(SMALL))
    wait_for(lambda: len([r for r in job_rows(queue_url) if r[2] in ("failed", "succeeded")])
             == 4, "the four jobs to end")
    rows = {lock: (status, attempts) for _, lock, status, attempts in job_rows(queue_url)}
    assert rows == {"bad-graph": ("failed", 1), "bad-input": ("failed", 1),
                    "never-ran": ("failed", 1), "fine": ("succeeded", 1)}
    # a decision for a finished thread is a no-op, not an error loop
    submit(queue_url, graph="support", thread_id="fine", resume=APPROVE)
    wait_for(lambda: worker.saw("job finished") and any(
        e.get("status", "").startswith("no-op") for e in worker.events()), "the no-op")
    assert statuses(queue_url, ["fine"]) == {"fine": ThreadStatus.DONE}


def test_a_request_the_thread_already_took_is_a_noop(queue_url, spawn, wait_for):
    """A run job whose request the thread already took (another worker ran the same job while
    this one was thought dead, or a client submitted it twice) does nothing; a new request on
    the finished thread is a new turn."""
    worker = spawn(queue_url)
    once = {"messages": [{"role": "user", "content": SMALL, "id": "req-1"}]}

    def epoch() -> int:
        with open_saver(queue_url) as saver:
            record = saver.threads.get("twice")
        return record.epoch if record is not None and record.status is ThreadStatus.DONE else -1

    def finished(n: int) -> bool:
        return len([e for e in worker.events()
                    if e.get("event", "").startswith("job finished")]) >= n

    submit(queue_url, graph="support", thread_id="twice", payload=once)
    wait_for(lambda: finished(1) and epoch() == 1, "the first request")
    submit(queue_url, graph="support", thread_id="twice", payload=once)
    wait_for(lambda: finished(2), "the second job")
    ended = [e for e in worker.events() if e.get("event", "").startswith("job finished")]
    assert ended[-1]["status"] == "no-op (done)" and epoch() == 1  # nothing claimed the thread
    submit(queue_url, graph="support", thread_id="twice", payload=request(SMALL))
    wait_for(lambda: finished(3) and epoch() == 2, "the new turn")
    with open_saver(queue_url) as saver:
        graph = load_workflow("support").compile(checkpointer=saver)
        state = graph.get_state({"configurable": {"thread_id": "twice"}})
    humans = [m for m in state.values["messages"] if m.type == "human"]
    assert [m.content for m in humans] == [SMALL, SMALL]
    assert humans[0].id == "req-1" and humans[1].id.startswith("accord-job-")


def test_killed_worker_thread_finished_by_another(queue_url, spawn, worker_env, tmp_path, wait_for):
    gate = tmp_path / "gate"
    first = spawn(queue_url)
    submit(queue_url, graph=GATED, thread_id="gated", payload=request(BIG_REFUND))
    wait_for(lambda: statuses(queue_url, ["gated"])["gated"] is ThreadStatus.INTERRUPTED,
             "the approval")
    submit(queue_url, graph=GATED, thread_id="gated", resume=APPROVE)
    entered = wait_for(lambda: list(gate.glob("entered-*")), "the refund to start")
    assert entered[0].name == f"entered-{first.process.pid}"
    second = spawn(queue_url)
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    (gate / "open").touch()
    wait_for(lambda: statuses(queue_url, ["gated"])["gated"] is ThreadStatus.DONE,
             "another worker to finish the thread")
    assert len(refunds(worker_env)) == 1
    assert forks(queue_url, "gated") == []
    assert second.saw("job finished")
    resumed = [e for e in second.events() if e.get("event", "").startswith("job finished")]
    assert resumed and resumed[-1]["thread_id"] == "gated" and resumed[-1]["attempt"] >= 1


def test_stuck_thread_is_driven_again(queue_url, spawn, worker_env, tmp_path, wait_for, accord_bin):
    gate = tmp_path / "gate"
    # a thread left 'running' by a process that died outside any worker (here, accord resume)
    env = {**worker_env}
    run = subprocess.run([accord_bin, "run", GATED, BIG_REFUND, "--thread", "stuck", "--db",
                          queue_url, "--no-input", "--json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert statuses(queue_url, ["stuck"])["stuck"] is ThreadStatus.INTERRUPTED, run.stderr
    cli = subprocess.Popen([accord_bin, "resume", "stuck", "--approve", "--db", queue_url,
                            "--no-input"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    wait_for(lambda: list(gate.glob("entered-*")), "the refund to start")
    cli.kill()
    cli.wait()
    assert statuses(queue_url, ["stuck"])["stuck"] is ThreadStatus.RUNNING
    (gate / "open").touch()
    worker = spawn(queue_url, "--stuck-after", "0")
    wait_for(lambda: statuses(queue_url, ["stuck"])["stuck"] is ThreadStatus.DONE,
             "the stuck thread to be driven again")
    assert len(refunds(worker_env)) == 1
    assert forks(queue_url, "stuck") == []
    assert worker.saw("stuck thread stuck driven again")


def test_worker_without_schema_or_database_says_so(pg_schema_url, tmp_path, worker_env, spawn,
                                                   accord_bin):
    for url, says in ((pg_schema_url, "accord worker --init"),
                      ("postgresql://postgres@127.0.0.1:1/none", "cannot reach database")):
        done = subprocess.run([accord_bin, "worker", "--db", url], cwd=tmp_path, env=worker_env,
                              capture_output=True, text=True, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2
        assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr
    done = subprocess.run([accord_bin, "worker", "--db", "sqlite:///x.db"], cwd=tmp_path,
                          env=worker_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "need PostgreSQL" in done.stderr
    with pytest.raises(SchemaMissing):
        submit(pg_schema_url, graph="support", thread_id="t", payload=request(SMALL))
    # --init creates the schema, then the worker runs; the queue works from then on
    spawn(pg_schema_url, "--init")
    assert submit(pg_schema_url, graph="support", thread_id="t", payload=request(SMALL)) > 0


def test_sigterm_lets_the_running_job_finish_and_metrics_are_served(
        queue_url, spawn, worker_env, tmp_path, wait_for):
    import socket
    import urllib.request

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    worker = spawn(queue_url, "--metrics-port", str(port))
    submit(queue_url, graph=GATED, thread_id="term", payload=request(BIG_REFUND))
    wait_for(lambda: statuses(queue_url, ["term"])["term"] is ThreadStatus.INTERRUPTED,
             "the approval")
    submit(queue_url, graph=GATED, thread_id="term", resume=APPROVE)
    wait_for(lambda: list((tmp_path / "gate").glob("entered-*")), "the refund to start")
    worker.process.send_signal(signal.SIGTERM)
    wait_for(lambda: any("stop" in e.get("event", "").lower() for e in worker.events()
                         if e.get("logger", "").startswith("procrastinate")), "the stop request")
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert b'accord_runs_total{graph="' in metrics  # the run before the approval, this process
    (tmp_path / "gate").joinpath("open").touch()
    assert worker.process.wait(timeout=60) == 0
    assert statuses(queue_url, ["term"]) == {"term": ThreadStatus.DONE}
    assert len(refunds(worker_env)) == 1
