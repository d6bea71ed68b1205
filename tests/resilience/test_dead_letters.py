"""Dead letters on memory://, SQLite and PostgreSQL, through Python and the CLI.

A stored handoff is edited by hand the way a user can (``fork --set`` on a checkpoint whose next
node is the agent); the run that meets it ends ``failed`` with the cause and a dead letter, and
a retry of the letter brings the thread to ``done``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from accord.agents import AgentResult, AgentSpec
from accord.checkpoints import open_saver
from accord.checkpoints.timetravel import fork, history
from accord.graphs import Router, Step, Workflow
from accord.records import AuditKind, ThreadStatus
from accord.resilience import (
    HandoffCorrupt,
    HandoffExpired,
    HandoffInvalid,
    LetterNotDead,
    LetterReason,
    LetterStatus,
    UnknownHandoffVersion,
    dead_letter_event,
)
from accord.resilience import deadletters as dlq
from accord.resilience.deadletters import DeadLetterNotFound

V1 = Path(__file__).parents[1] / "data" / "handoff_v1.json"
TASK = "task-1"


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


def billing(handoff, tools) -> AgentResult:
    return AgentResult(f"billing done: {handoff.query} ({handoff.context.get('plan', '-')})")


class NeedsEmail(BaseModel):
    query: str
    email: str


class Flaky:
    """A plain node that fails until the test repairs it."""

    def __init__(self) -> None:
        self.broken = True

    def __call__(self, state: dict[str, Any]) -> Step:
        if self.broken:
            raise RuntimeError("the ledger service is down")
        task = state["active_task"]
        return Step("END", {"tasks": {task: {"status": "completed", "result": "flaky done"}}})


def workflow(*, ttl: float | None = None, schema: type[BaseModel] | None = None,
             flaky: Flaky | None = None) -> Workflow:
    spec = AgentSpec(id="billing", version="1.4.0", purpose="Bills", kind="rules",
                     handler=billing, reads=("plan",), input_schema=schema)
    flow = Workflow("letters", router=Router(default="flaky" if flaky else "billing"),
                    max_hops=8, handoff_ttl=ttl).agent(spec)
    table: dict[str, list[str]] = {"router": ["billing", "END"], "billing": ["router"]}
    if flaky is not None:
        flow.node("flaky", flaky)
        table = {"router": ["billing", "flaky", "END"], "billing": ["router"], "flaky": ["END"]}
    return flow.transitions(table)


def ask(graph: Any, thread: str) -> Any:
    return graph.invoke({"messages": [{"role": "user", "content": "my invoice INV-1 is wrong",
                                       "id": TASK}]}, {"configurable": {"thread_id": thread}})


def before_billing(graph: Any, thread: str) -> str:
    """The checkpoint whose next node is billing (the router's step, with its envelope)."""
    entries = asyncio.run(history(graph, thread))
    return next(e.checkpoint_id for e in entries if e.next == ("billing",))


def stored_envelope(graph: Any, thread: str, checkpoint: str) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread, "checkpoint_id": checkpoint}}
    return copy.deepcopy(graph.get_state(config).values["tasks"][TASK]["handoffs"]["billing"])


def with_handoff(graph: Any, source: str, target: str, envelope: Any) -> None:
    """``target``: a fork of ``source`` before billing, its stored handoff replaced."""
    at = before_billing(graph, source)
    asyncio.run(fork(graph, source, at, target,
                     {"tasks": {TASK: {"handoffs": {"billing": envelope}}}}))


def continue_(graph: Any, thread: str) -> Any:
    return graph.invoke(None, {"configurable": {"thread_id": thread}})


# -- refused handoffs ---------------------------------------------------------------------------


def test_a_corrupt_handoff_is_dead_lettered_and_a_retry_brings_the_thread_to_done(db_url):
    with open_saver(db_url) as saver:
        graph = workflow().compile(checkpointer=saver)
        ask(graph, "a")
        bad = {**stored_envelope(graph, "a", before_billing(graph, "a")), "priority": "urgent"}
        with_handoff(graph, "a", "b", bad)
        with pytest.raises(HandoffCorrupt, match="priority"):
            continue_(graph, "b")
        record = saver.threads.get("b")
        assert record.status is ThreadStatus.FAILED and "corrupt" in record.error
        [letter] = dlq.letters(saver, thread_id="b")
        assert letter.reason is LetterReason.CORRUPT and letter.status is LetterStatus.DEAD
        assert (letter.node, letter.agent, letter.agent_version) == ("billing", "billing", "1.4.0")
        assert (letter.task_id, letter.attempts) == (TASK, 1)
        assert letter.payload == bad  # what was received, exactly
        assert letter.checkpoint_id == saver.checkpoint_ids("b")[0][0]
        kinds = [e.kind for e in saver.audit_log("b")]
        assert AuditKind.RUN_FAILED in kinds and AuditKind.DEAD_LETTERED in kinds

        out = asyncio.run(dlq.retry(graph, letter.id))
        assert out["tasks"][TASK]["result"] == "billing done: my invoice INV-1 is wrong (-)"
        assert saver.threads.get("b").status is ThreadStatus.DONE
        retried = dlq.get(saver, letter.id)
        assert (retried.status, retried.resolution) == (LetterStatus.RETRIED, "done")
        assert saver.threads.get("a").status is ThreadStatus.DONE  # the source is untouched
        with pytest.raises(LetterNotDead, match="was retried"):
            asyncio.run(dlq.retry(graph, letter.id))


def test_an_expired_handoff_is_not_run_and_is_dead_lettered_with_the_reason(db_url):
    with open_saver(db_url) as saver:
        graph = workflow(ttl=300).compile(checkpointer=saver)
        ask(graph, "a")
        envelope = stored_envelope(graph, "a", before_billing(graph, "a"))
        assert envelope["ttl"] == 300
        sent = datetime.now(UTC) - timedelta(hours=2)  # it waited two hours for its agent
        with_handoff(graph, "a", "b", {**envelope, "created_at": sent.isoformat()})
        with pytest.raises(HandoffExpired, match="expired at .*ttl 300s"):
            continue_(graph, "b")
        [letter] = dlq.letters(saver, status="dead")
        assert letter.reason is LetterReason.EXPIRED and "expired" in letter.error
        assert not [e for e in saver.audit_log("b") if e.kind is AuditKind.TOOL_CALL]
        asyncio.run(dlq.retry(graph, letter.id))  # issued afresh: it runs
        assert saver.threads.get("b").status is ThreadStatus.DONE


def test_an_unknown_schema_version_is_dead_lettered(db_url):
    with open_saver(db_url) as saver:
        graph = workflow().compile(checkpointer=saver)
        ask(graph, "a")
        envelope = stored_envelope(graph, "a", before_billing(graph, "a"))
        with_handoff(graph, "a", "b", {**envelope, "schema_version": 7})
        with pytest.raises(UnknownHandoffVersion):
            continue_(graph, "b")
        [letter] = dlq.letters(saver)
        assert letter.reason is LetterReason.UNKNOWN_VERSION
        assert letter.payload["schema_version"] == 7


def test_a_stored_envelope_of_the_previous_version_still_runs(db_url):
    with open_saver(db_url) as saver:
        graph = workflow().compile(checkpointer=saver)
        ask(graph, "a")
        with_handoff(graph, "a", "b", json.loads(V1.read_text()))
        out = continue_(graph, "b")
        # the agent ran on the v1 envelope's own payload (its context, not the thread's)
        assert out["tasks"][TASK]["result"] == "billing done: my invoice INV-1 is wrong (pro)"
        assert saver.threads.get("b").status is ThreadStatus.DONE
        assert dlq.letters(saver) == []


def test_a_payload_the_recipient_refuses_is_dead_lettered_and_a_failed_retry_leaves_a_new_letter(
        db_url):
    with open_saver(db_url) as saver:
        graph = workflow(schema=NeedsEmail).compile(checkpointer=saver)
        with pytest.raises(HandoffInvalid, match="NeedsEmail: email"):
            ask(graph, "a")
        [first] = dlq.letters(saver)
        assert first.reason is LetterReason.INVALID
        assert first.payload["payload"]["query"] == "my invoice INV-1 is wrong"
        with pytest.raises(HandoffInvalid):
            asyncio.run(dlq.retry(graph, first.id))
        second = next(x for x in dlq.letters(saver) if x.id != first.id)
        assert (second.status, second.attempts) == (LetterStatus.DEAD, 2)
        assert dlq.get(saver, first.id).resolution == "failed"
        dlq.discard(saver, second.id, "the customer has no email on file")
        with pytest.raises(LetterNotDead, match="was discarded .*no email on file"):
            asyncio.run(dlq.retry(graph, second.id))


# -- failed runs and the hook -------------------------------------------------------------------


def test_a_failed_run_is_a_dead_letter_and_its_retry_re_enters_from_its_checkpoint(db_url):
    flaky = Flaky()
    with open_saver(db_url) as saver:
        graph = workflow(flaky=flaky).compile(checkpointer=saver)
        with pytest.raises(RuntimeError, match="ledger service is down"):
            ask(graph, "a")
        [letter] = dlq.letters(saver)
        assert (letter.reason, letter.node, letter.task_id) == (LetterReason.FAILED, "flaky", TASK)
        assert letter.error == "RuntimeError: the ledger service is down"
        assert letter.payload["query"] == "my invoice INV-1 is wrong"
        state = graph.get_state({"configurable": {"thread_id": "a",
                                                  "checkpoint_id": letter.checkpoint_id}})
        assert state.next == ("flaky",)
        flaky.broken = False
        out = asyncio.run(dlq.retry(graph, letter.id))
        assert out["tasks"][TASK]["result"] == "flaky done"
        assert saver.threads.get("a").status is ThreadStatus.DONE


def test_a_node_that_gives_a_task_up_stores_its_letter_with_the_step(db_url):
    def gives_up(state: dict[str, Any]) -> Step:
        task = state["active_task"]
        event = dead_letter_event(node="giver", agent="billing", agent_version="1.4.0",
                                  task_id=task, error=TimeoutError("every fallback timed out"),
                                  payload={"query": "q"}, attempts=3)
        return Step("END", {"tasks": {task: {"status": "failed"}}, "audit": [event]})

    flow = (Workflow("hook", router=Router(default="giver"), max_hops=4)
            .node("giver", gives_up).transitions({"router": ["giver", "END"], "giver": ["END"]}))
    with open_saver(db_url) as saver:
        graph = flow.compile(checkpointer=saver)
        ask(graph, "a")
        [letter] = dlq.letters(saver)
        assert (letter.reason, letter.attempts) == (LetterReason.EXHAUSTED, 3)
        assert letter.error == "TimeoutError: every fallback timed out"
        state = graph.get_state({"configurable": {"thread_id": "a",
                                                  "checkpoint_id": letter.checkpoint_id}})
        assert state.next == ("giver",)  # the checkpoint the step ran from


def test_letters_are_pruned_with_their_thread_and_bad_ids_are_typed_errors(db_url):
    flaky = Flaky()
    with open_saver(db_url) as saver:
        graph = workflow(flaky=flaky).compile(checkpointer=saver)
        with pytest.raises(RuntimeError):
            ask(graph, "a")
        with pytest.raises(RuntimeError):
            ask(graph, "keep")
        assert len(dlq.letters(saver)) == 2
        saver.prune(["a"], strategy="delete")
        assert [x.thread_id for x in dlq.letters(saver)] == ["keep"]
        with pytest.raises(DeadLetterNotFound, match="unknown dead letter 'dl-nope'"):
            dlq.get(saver, "dl-nope")
        with pytest.raises(DeadLetterNotFound):
            asyncio.run(dlq.retry(graph, "dl-nope"))


# -- the CLI --------------------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


FLOW = '''
from accord.agents import AgentResult, AgentSpec
from accord.graphs import Router, Workflow


def billing(handoff, tools):
    return AgentResult(f"billing done: {handoff.query}")


def build():
    spec = AgentSpec(id="billing", purpose="Bills", kind="rules", handler=billing)
    return (Workflow("letters", router=Router(default="billing"), max_hops=8).agent(spec)
            .transitions({"router": ["billing", "END"], "billing": ["router"]}))
'''


def test_the_cli_lists_shows_retries_and_discards(durable_url, tmp_path):
    (tmp_path / "flow.py").write_text(FLOW)
    db = ["--db", durable_url]
    run = cli("run", "flow.py:build", "my invoice is wrong", "--thread", "a", "--json", *db,
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    history_rows = json.loads(cli("history", "a", "--json", *db, cwd=tmp_path).stdout)
    at = next(h["checkpoint_id"] for h in history_rows if h["next"] == ["billing"])
    [task] = list(json.loads(cli("show", "a", "--json", *db, cwd=tmp_path).stdout)["tasks"])
    bad = json.dumps({task: {"handoffs": {"billing": "edited by hand"}}})
    forked = cli("fork", "a", "--at", at, "--set", f"tasks={bad}", "--thread", "b", *db,
                 cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr
    failed = cli("resume", "b", "--json", *db, cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    assert json.loads(failed.stdout)["status"] == "failed"
    assert "corrupt" in json.loads(failed.stdout)["error"]

    listed = json.loads(cli("dlq", "list", "--json", *db, cwd=tmp_path).stdout)
    [letter] = listed
    assert (letter["reason"], letter["thread_id"], letter["payload"]) == (
        "corrupt", "b", "edited by hand")
    table = cli("dlq", "list", *db, cwd=tmp_path)
    assert table.returncode == 0 and letter["id"] in table.stdout
    shown = cli("dlq", "show", letter["id"], *db, cwd=tmp_path)
    assert shown.returncode == 0 and "edited by hand" in shown.stdout

    retried = cli("dlq", "retry", letter["id"], "--json", *db, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["status"] == "done"
    assert json.loads(cli("dlq", "show", letter["id"], "--json", *db,
                          cwd=tmp_path).stdout)["status"] == "retried"

    again = cli("dlq", "retry", letter["id"], *db, cwd=tmp_path)
    assert again.returncode == 2 and "was retried" in again.stderr
    assert "Traceback" not in again.stderr
    unknown = cli("dlq", "show", "dl-0000", *db, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown dead letter 'dl-0000'" in unknown.stderr
    assert cli("dlq", "discard", "dl-0000", *db, cwd=tmp_path).returncode == 2
    bad_status = cli("dlq", "list", "--status", "lost", *db, cwd=tmp_path)
    assert bad_status.returncode == 2 and "unknown status" in bad_status.stderr
