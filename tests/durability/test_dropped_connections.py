"""PostgreSQL connections dropped mid-run (server restart, proxy, idle killer) are replaced:
the run finishes, nothing saved is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg

SLOW_GRAPH = textwrap.dedent(
    '''
    import time

    from accord.agents import AgentResult, AgentSpec
    from accord.graphs import Router, Workflow


    def slow(handoff, tools):
        time.sleep(4)
        return AgentResult("finished after the connections were dropped")


    def build():
        spec = AgentSpec(id="slow", purpose="Takes its time", kind="rules", handler=slow)
        return (Workflow("slow", router=Router(default="slow"), max_hops=4).agent(spec)
                .transitions({"router": ["slow", "END"], "slow": ["router"]}))
    '''
)


def terminate_other_sessions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).fetchall()
    return len(rows)


def test_run_survives_its_connections_being_terminated(tmp_path: Path, postgres_url: str) -> None:
    (tmp_path / "slowgraph.py").write_text(SLOW_GRAPH)
    thread = f"drop-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ACCORD_SUPPORT_DB": str(tmp_path / "s.db")}
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "accord.cli.main", "run", "slowgraph:build", "hello",
         "--thread", thread, "--db", postgres_url, "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(2.5)  # the agent is sleeping; the pool and the thread lock hold connections
    killed = terminate_other_sessions(postgres_url)
    out, err = child.communicate(timeout=120)
    assert killed >= 1
    assert child.returncode == 0, err
    outcome = json.loads(out)
    assert outcome["status"] == "done", outcome
    assert outcome["reply"] == "finished after the connections were dropped"
    shown = subprocess.run(
        [sys.executable, "-P", "-m", "accord.cli.main", "show", thread, "--db", postgres_url, "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    history = json.loads(shown.stdout)["history"]
    assert len(history) >= 4  # the checkpoints from before the drop are all still there
