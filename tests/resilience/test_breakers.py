"""Circuit breakers per agent and per model provider, shared through the database.

The agent talks to the real `ChatOpenAI` over `OpenAICompatServer`; the server's request count
proves that no call is made while a breaker is open. Time moves through an injected clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from accord.agents import AgentRegistry, AgentResult, AgentSpec, ModelResolver, RetrySpec
from accord.checkpoints import open_saver
from accord.graphs import Router, Workflow
from accord.records import AuditKind, ThreadStatus
from accord.resilience import (
    BreakerSpec,
    BreakerState,
    BreakerTableCorrupt,
    MemoryBreakers,
    breakers_for,
)
from accord.testing import OpenAICompatServer, ProviderFault

SPEC = BreakerSpec(failures=2, window=60.0, cool_down=30.0)
ANSWER, BACKUP = "answer", "backup"
MODEL = "openai:gpt-4o-mini"
AGENT_BREAKER, PROVIDER_BREAKER = f"agent:{ANSWER}", f"provider:{MODEL}"


class Clock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# -- the state machine ------------------------------------------------------------------------


def test_the_state_machine_opens_probes_once_and_closes_or_reopens():
    clock = Clock()
    store = MemoryBreakers(clock)
    assert store.admit("b", SPEC)[0]
    store.record("b", SPEC, ok=False)
    clock.now += SPEC.window + 1  # the first failure leaves the window
    _, after = store.record("b", SPEC, ok=False)
    assert (after.state, after.failures) == (BreakerState.CLOSED, 1)
    _, after = store.record("b", SPEC, ok=False)
    assert (after.state, after.failures) == (BreakerState.OPEN, 2)
    assert store.admit("b", SPEC)[0] is False
    clock.now += SPEC.cool_down - 1
    assert store.admit("b", SPEC)[0] is False  # still cooling down
    clock.now += 1
    allowed, probe = store.admit("b", SPEC)
    assert allowed and probe.state is BreakerState.HALF_OPEN
    assert store.admit("b", SPEC)[0] is False  # one probe at a time
    _, after = store.record("b", SPEC, ok=False)
    assert after.state is BreakerState.OPEN  # the probe failed: open again, a new cool-down
    clock.now += SPEC.cool_down
    assert store.admit("b", SPEC)[0]
    _, after = store.record("b", SPEC, ok=True)
    assert (after.state, after.failures) == (BreakerState.CLOSED, 0)
    assert store.admit("b", SPEC)[0]


# -- through the agent node, on SQLite and PostgreSQL -----------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    return request.getfixturevalue("pg_schema_url")


def backup_handler(handoff, tools) -> AgentResult:
    return AgentResult(f"backup answered: {handoff.query}")


def workflow() -> Workflow:
    answer = AgentSpec(id=ANSWER, purpose="answers questions", kind="llm", model=MODEL,
                       fallback=BACKUP, breaker=SPEC,
                       retry=RetrySpec(max_attempts=1, initial_interval=0))
    backup = AgentSpec(id=BACKUP, purpose="answers when the LLM agent cannot", kind="rules",
                       handler=backup_handler)
    flow = Workflow("breakers", router=Router(default=ANSWER), max_hops=6,
                    models=ModelResolver(request_timeout=5.0), registry=AgentRegistry([backup]))
    return flow.agent(answer).transitions({"router": [ANSWER, "END"], ANSWER: ["router"]})


class Provider:
    """The server's behaviour, switched by the test: down (503) or answering."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self, messages, **_: Any) -> Any:
        return ProviderFault.status(503) if self.down else "exported"


def ask(saver: Any) -> tuple[dict[str, Any], list[Any]]:
    """One request on a new thread: (final state, audit log)."""
    thread = f"t-{uuid.uuid4().hex}"
    graph = workflow().compile(checkpointer=saver)
    out = graph.invoke({"messages": [{"role": "user", "content": "export?"}]},
                       {"configurable": {"thread_id": thread}})
    assert saver.threads.get(thread).status is ThreadStatus.DONE
    return out, saver.audit_log(thread)


def kinds(audit: list[Any]) -> list[AuditKind]:
    breaker = {AuditKind.BREAKER_OPENED, AuditKind.BREAKER_SKIPPED, AuditKind.BREAKER_PROBE,
               AuditKind.BREAKER_CLOSED, AuditKind.FALLBACK}
    return [e.kind for e in audit if e.kind in breaker]


@pytest.fixture
def provider(monkeypatch):
    behaviour = Provider()
    with OpenAICompatServer(responder=behaviour) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield behaviour, server


@pytest.mark.parametrize("probe_ok", [True, False], ids=["probe-closes", "probe-reopens"])
def test_a_breaker_opens_skips_the_call_and_probes_after_its_cool_down(db_url, provider,
                                                                       probe_ok):
    behaviour, server = provider
    clock = Clock()
    with open_saver(db_url) as saver:
        breakers_for(saver, clock=clock)
        _, first = ask(saver)
        assert server.calls == 1 and kinds(first) == [AuditKind.FALLBACK]
        _, second = ask(saver)  # the second failure in the window opens both breakers
        assert server.calls == 2
        opened = [e.details() for e in second if e.kind is AuditKind.BREAKER_OPENED]
        assert {e["breaker"] for e in opened} == {AGENT_BREAKER, PROVIDER_BREAKER}
        assert all("503" in e["error"] for e in opened)

        out, third = ask(saver)  # open: straight to the fallback, no call made
        assert server.calls == 2
        assert kinds(third) == [AuditKind.BREAKER_SKIPPED, AuditKind.FALLBACK]
        [fallback] = [e.details() for e in third if e.kind is AuditKind.FALLBACK]
        assert fallback["error"].startswith(f"BreakerOpen: circuit breaker {AGENT_BREAKER}")
        assert fallback["cause"] == "breaker_open"
        [task] = [e.details()["task"] for e in third if e.kind is AuditKind.TASK_FINISHED]
        assert [(h["kind"], h["cause"], h["calls"]) for h in task["hops"]] == [
            ("primary", "breaker_open", 0), ("agent", None, 1)]
        assert out["outputs"][ANSWER]["agent"] == BACKUP

        clock.now += SPEC.cool_down
        behaviour.down = not probe_ok
        out, fourth = ask(saver)  # half-open: one probe call
        assert server.calls == 3
        states = {b.name: b.state for b in breakers_for(saver).all()}
        if probe_ok:
            assert out["outputs"][ANSWER]["agent"] == ANSWER  # the primary answered
            assert out["messages"][-1].content == "exported"
            assert AuditKind.BREAKER_CLOSED in kinds(fourth)
            assert AuditKind.FALLBACK not in kinds(fourth)
            assert states == {AGENT_BREAKER: BreakerState.CLOSED,
                              PROVIDER_BREAKER: BreakerState.CLOSED}
        else:
            assert kinds(fourth)[:1] == [AuditKind.BREAKER_PROBE]
            assert AuditKind.BREAKER_OPENED in kinds(fourth)
            assert states == {AGENT_BREAKER: BreakerState.OPEN,
                              PROVIDER_BREAKER: BreakerState.OPEN}
            ask(saver)
            assert server.calls == 3  # open again: no call


def test_a_breaker_is_shared_by_savers_and_processes_on_one_database(durable_url, provider,
                                                                     tmp_path):
    behaviour, server = provider
    clock = Clock()
    with open_saver(durable_url) as one, open_saver(durable_url) as two:
        breakers_for(one, clock=clock)
        breakers_for(two, clock=clock)
        ask(one)
        ask(one)  # opened through the first saver
        assert server.calls == 2
        _, audit = ask(two)  # the second saver sees it open: no call
        assert server.calls == 2 and AuditKind.BREAKER_SKIPPED in kinds(audit)

    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", "health", "--db",
                            durable_url, "--json"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    rows = {r["name"]: r for r in json.loads(shown.stdout)}
    assert {n: r["state"] for n, r in rows.items()} == {AGENT_BREAKER: "open",
                                                         PROVIDER_BREAKER: "open"}
    assert rows[AGENT_BREAKER]["failures"] == 2

    table = subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", "health", "--db",
                            durable_url], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert table.returncode == 0 and AGENT_BREAKER in table.stdout and "open" in table.stdout


def test_a_breaker_row_edited_by_hand_is_one_clear_error(tmp_path, provider):
    _, server = provider
    url = f"sqlite:///{tmp_path}/accord.db"
    with open_saver(url) as saver:
        breakers_for(saver).record(AGENT_BREAKER, SPEC, ok=False)
        with saver.cursor() as cur:
            cur.execute("UPDATE accord_breakers SET state = 'melted'")
        with pytest.raises(BreakerTableCorrupt, match=AGENT_BREAKER):
            breakers_for(saver).all()
        out, audit = ask(saver)  # the run still ends done: the fallback, with the cause
        assert server.calls == 0
        [fallback] = [e.details() for e in audit if e.kind is AuditKind.FALLBACK]
        assert fallback["error"].startswith("BreakerTableCorrupt: accord_breakers row")
        assert out["outputs"][ANSWER]["agent"] == BACKUP
    shown = subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", "health", "--db", url],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 2
    assert f"accord_breakers row '{AGENT_BREAKER}'" in shown.stderr and "Traceback" not in shown.stderr
