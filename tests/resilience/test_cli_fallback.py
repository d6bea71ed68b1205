"""The CLI shows a fallback chain, never silently: each hop with its cause, the person asked at
its end (answered with ``accord resume --reply``), and ``accord show`` lists the hops and the
failed attempts. Real subprocesses, the real OpenAI client, the fault server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from accord.testing import OpenAICompatServer, ProviderFault

FLOW = textwrap.dedent('''
    from accord.agents import AgentRegistry, AgentSpec, ModelResolver, RetrySpec
    from accord.graphs import Router, Workflow


    def broken(handoff, tools):
        raise LookupError("no rule fits")


    def build():
        twin = AgentSpec(id="twin", purpose="answers by rule", kind="rules", handler=broken)
        answer = AgentSpec(id="answer", purpose="answers", kind="llm", model="small",
                           fallback=["twin", "human"],
                           retry=RetrySpec(max_attempts=2, initial_interval=0))
        flow = Workflow("cli_chain", router=Router(default="answer"), max_hops=6,
                        registry=AgentRegistry([twin]), models=ModelResolver(request_timeout=5))
        return flow.agent(answer).transitions({"router": ["answer", "END"], "answer": ["router"]})
''')


@pytest.fixture
def cli(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW)
    with OpenAICompatServer(responder=lambda *_, **__: ProviderFault.status(503)) as server:
        env = {**os.environ, "OPENAI_API_KEY": "test", "OPENAI_BASE_URL": server.base_url,
               "ACCORD_DB_URL": f"sqlite:///{tmp_path}/accord.db", "COLUMNS": "250",
               "NO_COLOR": "1"}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args],
                                  cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=120, check=False)

        run.server = server  # type: ignore[attr-defined]
        yield run


def test_a_chain_ends_with_a_person_who_replies_from_the_cli(cli):
    started = cli("run", "flow.py:build", "how do I export my data?", "--thread", "t-cli",
                  "--no-input")
    assert started.returncode == 0, started.stderr
    assert "a person is asked to answer at answer" in started.stdout
    assert "[transient]" in started.stdout and "[error] LookupError: no rule fits" in started.stdout
    assert "accord resume t-cli --respond TEXT | --reject REASON" in started.stdout
    calls = cli.server.calls
    assert calls == 2  # the LLM agent's two attempts

    wrong = cli("resume", "t-cli", "--approve")
    assert wrong.returncode == 2
    assert "waits for a person's reply" in wrong.stderr and "escalation still waits" in wrong.stderr
    assert wrong.stderr.count("\n") == 1, wrong.stderr

    answered = cli("resume", "t-cli", "--respond", "I exported it for you.", "--by", "ana")
    assert answered.returncode == 0, answered.stderr
    assert "fallback answer (openai:gpt-4o-mini) failed (transient: " in answered.stdout
    assert "twin takes over" in answered.stdout
    assert "fallback twin failed (error: LookupError: no rule fits); human takes over" in \
        answered.stdout
    assert "human reply by ana" in answered.stdout
    assert "t-cli done" in answered.stdout
    assert cli.server.calls == calls  # nothing tried again on resume

    shown = cli("show", "t-cli")
    assert shown.returncode == 0, shown.stderr
    assert "answer[transient 2/2] → twin[error 1/1] → human[ok 0/1]" in shown.stdout
    assert shown.stdout.count("attempt_failed") == 3

    data = json.loads(cli("show", "t-cli", "--json").stdout)
    [task] = data["tasks"].values()
    assert [(h["kind"], h["cause"]) for h in task["hops"]] == [
        ("primary", "transient"), ("agent", "error"), ("human", None)]
    assert task["status"] == "completed" and task["result"] == "I exported it for you."
