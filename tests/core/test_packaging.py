"""accord installs one namespace: `accord.graphs` etc. import; the bare folder names do not
(they belong to other distributions: OpenAI Agents SDK `agents`, guardrails-ai `guardrails`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def python(code: str, cwd) -> subprocess.CompletedProcess[str]:
    """Run the venv's Python on `code` with safe-path semantics, seeing only what is installed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-P", "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_accord_subpackages_import(tmp_path):
    result = python(
        "import accord.graphs, accord.agents, accord.guardrails, accord.checkpoints, accord.testing, "
        "accord.cli.main; print(accord.graphs.Workflow.__module__)",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "accord.graphs.builder"


@pytest.mark.parametrize("name", ["agents", "graphs", "guardrails", "checkpoints"])
def test_bare_folder_names_are_not_installed(tmp_path, name):
    code = (
        "try:\n"
        f"    import {name}\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('missing', exc.name)\n"
        "else:\n"
        f"    print('found', {name}.__file__)\n"
    )
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"missing {name}"
