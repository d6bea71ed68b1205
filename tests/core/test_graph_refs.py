"""The CLI finds a user's graph: a file, a module in the current directory, a graph id of
./langgraph.json; a Workflow, a compiled graph or a factory of either. The reference is recorded
with the thread, so `accord show` finds the graph from another directory without being told.
All in real subprocesses, in a temporary directory, with no PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = '''
from langchain_core.messages import AIMessage

from accord.graphs import Router, Step, Workflow


def echo(state):
    return Step("END", {"messages": [AIMessage("echo: " + state["messages"][-1].text)]})


def build():
    workflow = Workflow("echo", router=Router(default="echo"))
    return workflow.node("echo", echo).transitions({"router": ["echo", "END"], "echo": ["END"]})


WORKFLOW = build()
GRAPH = build().compile()
NUMBER = 42
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "echo_flow.py").write_text(FLOW)
    (root / "echo_module.py").write_text(FLOW)
    (root / "langgraph.json").write_text(json.dumps(
        {"dependencies": ["."], "graphs": {"echoer": "./flows/echo_flow.py:build"}}))
    return root


def accord(cwd: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(COLUMNS="200", NO_COLOR="1", ACCORD_DB_URL=db)
    return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("ref", ["flows/echo_flow.py:build", "echo_module:WORKFLOW",
                                 "echo_module:GRAPH", "echoer"])
def test_a_user_graph_runs_and_is_found_again_from_elsewhere(project: Path, tmp_path: Path,
                                                             ref: str) -> None:
    db = f"sqlite:///{tmp_path}/accord.db"
    done = accord(project, db, "run", ref, "hello", "--thread", "t1", "--json")
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["status"], json.loads(done.stdout)["reply"]) == (
        "done", "echo: hello")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = accord(elsewhere, db, "show", "t1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "done"
    threads = accord(elsewhere, db, "threads", "--json")
    (row,) = json.loads(threads.stdout)
    assert Path(row["graph"].rpartition(":")[0]).is_absolute()  # loadable from anywhere


@pytest.mark.parametrize(("ref", "expected"), [
    ("flows/missing.py:build", "cannot load graph 'flows/missing.py:build': no such file"),
    ("echo_module:nothing", "cannot load graph 'echo_module:nothing'"),
    ("echo_module:NUMBER", "'echo_module:NUMBER' names a int, not an accord Workflow"),
    ("no_such_module:build", "cannot load graph 'no_such_module:build': No module named"),
    ("nonsense", "unknown graph 'nonsense'; known graphs: desk, echoer, support"),
])
def test_a_bad_reference_is_one_line_and_exit_2(project: Path, tmp_path: Path, ref: str,
                                                expected: str) -> None:
    done = accord(project, f"sqlite:///{tmp_path}/accord.db", "run", ref, "hello")
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = [x for x in done.stderr.splitlines() if x.strip()]
    assert line.startswith("error: ") and expected in line, line


def test_a_thread_recorded_under_a_langgraph_json_graph_id_is_found_by_that_id(
        project: Path, tmp_path: Path) -> None:
    """``langgraph dev`` records a thread under its graph id: the CLI, run beside that
    ``langgraph.json``, loads the graph by the id."""
    db = f"sqlite:///{tmp_path}/accord.db"
    script = project / "served.py"
    script.write_text(
        "import sys\n"
        "from accord.checkpoints import open_saver\n"
        "sys.path.insert(0, 'flows')\n"
        "from echo_flow import build\n"
        f"with open_saver({db!r}) as saver:\n"
        "    graph = build().compile(checkpointer=saver)\n"
        "    graph.name = 'echoer'  # as the server names it\n"
        "    graph.invoke({'messages': [{'role': 'user', 'content': 'hi'}]},\n"
        "                 {'configurable': {'thread_id': 't-served'}})\n")
    made = subprocess.run([sys.executable, "-P", str(script)], cwd=project, capture_output=True,
                          text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    threads = json.loads(accord(project, db, "threads", "--json").stdout)
    assert [(r["thread_id"], r["graph"]) for r in threads] == [("t-served", "echoer")]
    shown = accord(project, db, "show", "t-served", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "done"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = accord(elsewhere, db, "show", "t-served")
    assert lost.returncode == 2 and "graph id of ./langgraph.json" in lost.stderr
