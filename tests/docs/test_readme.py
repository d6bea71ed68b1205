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
    code += "\n    print(graph.get_state(config).values['messages'][-1].content)\n"
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "close_account approved by ana: closed a@example.com" in done.stdout


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
