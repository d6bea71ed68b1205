"""The README's commands and code stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_workflow_example_runs(tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]  # the first one: own workflow
    # Run the commented "later, from any process" resume as well, and print the outcome.
    code = code.replace("    # graph.invoke(Command", "    graph.invoke(Command")
    code = code.replace("    # ... paused", "    from langgraph.types import Command\n    # ... paused")
    code += ("\n    for message in graph.get_state(config).values['messages'][-2:]:\n"
             "        print(message.name, message.content)\n")
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the approval ran the tool, then the agent that proposed it answered with its result
    assert done.stdout.splitlines()[-2:] == [
        "approve_close close_account approved by ana: closed a@example.com",
        "closer closed a@example.com"]


def test_readme_diagram_matches_the_support_graph() -> None:
    from accord.graphs.support import build_support

    diagram = re.search(r"```mermaid\n(.*?)```", README, re.S)
    assert diagram is not None
    drawn = set(re.findall(r"^\s*(\w+) -\.-> (\w+);", diagram.group(1), re.M))
    assert drawn == build_support(use_llm=False).table.pairs()


def test_readme_handoff_example_runs(tmp_path: Path) -> None:
    section = README.split("### Handoffs between agents", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    code += ("\nlegal = workflow.compile().invoke("
             "{'messages': [{'role': 'user', 'content': 'x'}]})\n")
    # intake's choice is checked for intake: an undeclared handoff goes to the error path
    code = code.replace('return AgentResult(f"for {to}"',
                        'to = "legal" if handoff.query == "x" else to\n'
                        '    return AgentResult(f"for {to}"')
    code += ("print([(e['node'], e['target']) for e in legal['audit'] "
             "if e['kind'] == 'illegal_transition'])\n"
             "print(legal['tasks'][legal['active_task']]['result'])\n")
    script = tmp_path / "handoffs.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["billing done", "[('intake', 'legal')]", "triage done"]


def test_readme_approval_snippet_returns_the_decision_to_the_agent(tmp_path: Path) -> None:
    section = README.split("## Human approval", 1)[1].split("\n## ", 1)[0]
    snippet = re.findall(r"```python\n(.*?)```", section, re.S)[-1]
    code = """
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from accord.agents import AgentResult, AgentSpec, ApprovalPolicy
from accord.graphs import Router, Step, Workflow

@tool
def close_account(email: str, idempotency_key: str = "") -> str:
    \"\"\"Close a customer's account.\"\"\"
    return f"closed {email}"
""" + snippet + """
def triage(state):
    return Step("END", {"tasks": {state["active_task"]: {"status": "completed", "result": "t"}}})

graph = (
    Workflow("accounts", router=Router(default="closer"), max_hops=10, error_node="triage",
             tools=[close_account],
             approvals=[ApprovalPolicy("close_account", approval_node="approve_close")])
    .agent(AgentSpec(id="closer", purpose="Closes accounts", kind="rules", handler=closer,
                     tools=("close_account",)))
    .approval("approve_close").node("triage", triage)
    .transitions({"router": ["closer", "END"], "closer": ["router", "approve_close", "triage"],
                  "approve_close": ["router"], "triage": ["END"]})
).compile(checkpointer=InMemorySaver())
for thread, answer in (("a", {"decisions": [{"type": "approve"}]}),
                       ("r", {"decision": "reject", "reason": "open invoices"})):
    config = {"configurable": {"thread_id": thread}}
    graph.invoke({"messages": [{"role": "user", "content": "close my account"}]}, config)
    out = graph.invoke(Command(resume=answer), config)
    print([m.content for m in out["messages"] if m.name == "closer"][-1])
"""
    script = tmp_path / "approval.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["closed a@example.com", "escalated: open invoices"]


OWN = README.split("### Your own project", 1)[1].split("\n## ", 1)[0]


def own_snippets(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", OWN, re.S)


def own_project(tmp_path: Path) -> Path:
    """A folder holding the README's flow.py and langgraph.json, as a user would lay it out."""
    project = tmp_path / "project"
    project.mkdir()
    flow = own_snippets("python")[0]
    assert flow.startswith("# flow.py\n")
    (project / "flow.py").write_text(flow)
    (project / "langgraph.json").write_text(own_snippets("json")[0])
    return project


def sent(project: Path) -> list[tuple[str, int]]:
    import sqlite3

    with sqlite3.connect(project / "sent.db") as db:
        return db.execute("SELECT issue, audience FROM sent ORDER BY rowid").fetchall()


def test_readme_own_project_runs_from_the_cli_python_and_its_langgraph_json(tmp_path: Path) -> None:
    import os

    project = own_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY")}
    env.update(COLUMNS="200", NO_COLOR="1")

    def accord(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args], cwd=project,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    import shlex

    run, resume = [line.split("#")[0].strip() for line in own_snippets("bash")[0].splitlines()
                   if line.strip()]
    accord(*shlex.split(run)[1:])
    assert not (project / "sent.db").exists()  # waiting for the editor: nothing sent
    # resume from another folder: the thread knows where its graph came from
    elsewhere = subprocess.run([sys.executable, "-P", "-m", "accord.cli.main",
                                *shlex.split(resume)[1:], "--db",
                                f"sqlite:///{project}/.accord/accord.db"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "approved by ana" in elsewhere.stdout
    assert sent(project) == [("Issue 12: the spring fair, for 25000 readers", 25000)]

    script = project / "from_python.py"
    script.write_text(own_snippets("python")[1])
    # as a user runs it: `python from_python.py`, its folder on sys.path (no -P: nothing to shadow)
    done = subprocess.run([sys.executable, str(script)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "{'issue': 'Issue 13, for 40000 readers', 'audience': 40000}"
    assert lines[1] == "sent 'Issue 13, for 40000 readers' to 40,000 readers"  # the sender's reply
    assert len(sent(project)) == 2

    small = accord("run", "newsletter", "Issue 15, for 50 readers", "--json")  # the langgraph.json id
    assert '"status": "done"' in small.stdout
    assert sent(project)[-1] == ("Issue 15, for 50 readers", 50)


def test_readme_fallback_chain_example_runs(tmp_path: Path) -> None:
    section = README.split("## Failure handling", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    script = tmp_path / "chains.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[('lookup', 'transient'), ('lookup_rules', 'error')]",
        "It ships today.",
        "[('lookup', 'transient'), ('lookup_rules', 'error'), ('human', None)]",
    ]


def test_readme_dead_letter_example_runs(tmp_path: Path) -> None:
    section = README.split("### Dead letters", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    script = tmp_path / "letters.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "failed ledger ConnectionError: ledger service unreachable"
    assert lines[1] == "posted done"


def test_readme_versions_example_runs(tmp_path: Path) -> None:
    section = README.split("## Versions, canaries and flags", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    script = tmp_path / "versions.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.strip().splitlines()
    assert 8 <= int(first.split()[0]) <= 32, first  # 20 +- 3 sigma of a binomial(100, 0.2)
    assert last == "answered by backup"


def test_readme_limits_example_runs(tmp_path: Path) -> None:
    section = README.split("### Permissions, rate limits and budgets", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    script = tmp_path / "limits.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Here you go.", "budget exhausted: user 'ana' today spent $0.0012 of $0.0010"]
