"""How the `accord` CLI reports, in real subprocesses.

- An ``AccordError`` is one ``error:`` line on stderr and exit code 2; nothing is logged as a
  bug and the thread is left as it was.
- Anything else is a bug: one ``error: internal error: <Type>: …`` line, exit code 1, and the
  traceback appended to ``.accord/logs/accord.log`` under the working directory; with the
  global ``--debug`` option the traceback is printed too.
- A run that fails is an outcome, not a bug: status ``failed`` with its cause, exit code 1.
- ``accord resume --reject REASON`` and ``--edit JSON`` answer a pending refund approval: the
  rejection is recorded with its reason and refunds nothing; the edit refunds the edited
  amount, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accord.checkpoints import open_saver
from accord.graphs.support import SupportDB, build_support
from accord.records import AuditKind, ThreadStatus

REFUND = "Please refund invoice INV-1002, I was charged twice"
LOG = Path(".accord/logs/accord.log")

BUGGY_MODULE = "cli_buggy_flow"
BUGGY_SOURCE = '''
"""Workflow factories for the CLI's error reporting."""

from accord.graphs import Router, Step, Workflow


def explodes():
    """A factory with a bug: it raises while the CLI loads the graph."""
    raise RuntimeError("factory exploded")


def fails():
    """A workflow whose only node raises: its runs fail (an outcome, not a CLI bug)."""
    workflow = Workflow("fails", router=Router(default="boom"))

    def boom(state):
        raise ValueError("the node gave up")

    return workflow.node("boom", boom).transitions({"router": ["boom", "END"], "boom": ["END"]})


def noisy():
    """A workflow whose node makes a library log a warning, then answers."""
    import logging

    from langchain_core.messages import AIMessage

    workflow = Workflow("noisy", router=Router(default="talk"))

    def talk(state):
        logging.getLogger("somelib.pool").warning("discarding a closed connection")
        return Step("END", {"messages": [AIMessage("all good")]})

    return workflow.node("talk", talk).transitions({"router": ["talk", "END"], "talk": ["END"]})
'''

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/accord.db"


@pytest.fixture
def accord(tmp_path: Path) -> Run:
    """The `accord` CLI in a subprocess whose working directory is ``tmp_path``, with the sample
    support database there and the buggy workflow module importable."""
    (tmp_path / f"{BUGGY_MODULE}.py").write_text(BUGGY_SOURCE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200", "NO_COLOR": "1",
           "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"),
           "ACCORD_DB_URL": f"sqlite:///{tmp_path}/default.db"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    return run


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def user_error(result: subprocess.CompletedProcess[str], expected: str) -> str:
    """Exit code 2 and exactly one `error:` line holding ``expected``; no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = [line for line in lines(result.stderr) if not line.startswith("support: ")]
    assert line.startswith("error: ") and not line.startswith("error: internal error")
    assert expected in line, line
    return line


@pytest.fixture
def waiting_refund(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A support thread (rule agents) waiting for approval of a 480 refund."""
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))
    thread = f"refund-{uuid.uuid4().hex[:10]}"
    config = {"configurable": {"thread_id": thread}}
    with open_saver(db) as saver:
        graph = build_support(db=SupportDB(tmp_path / "support.db"), use_llm=False).compile(
            checkpointer=saver)
        graph.invoke({"messages": [{"role": "user", "content": REFUND}]}, config)
        record = saver.threads.get(thread)
    assert record.status is ThreadStatus.INTERRUPTED
    [action] = record.pending["action_requests"]
    assert (action["name"], action["args"]["amount"]) == ("issue_refund", 480)
    assert SupportDB(tmp_path / "support.db").refunds() == []
    return thread


def decisions(db: str, thread: str) -> list[dict[str, Any]]:
    with open_saver(db) as saver:
        return [e.details() for e in saver.audit_log(thread)
                if e.kind is AuditKind.HUMAN_DECISION]


# user errors ----------------------------------------------------------------------------------
def test_a_refused_request_is_one_error_line_exit_2_and_no_bug_log(
    accord: Run, db: str, waiting_refund: str, tmp_path: Path
) -> None:
    """ThreadWaiting (an AccordError) from the engine, through `accord run`."""
    line = user_error(accord("run", "support", "my app crashes", "--thread", waiting_refund,
                             "--db", db, "--no-input"),
                      f"thread {waiting_refund!r} is waiting for a decision on issue_refund")
    assert f"accord resume {waiting_refund} --approve" in line
    assert not (tmp_path / LOG).exists()
    with open_saver(db) as saver:
        record = saver.threads.get(waiting_refund)
    assert (record.status, record.epoch, record.pending["action_requests"][0]["name"]) == (
        ThreadStatus.INTERRUPTED, 1, "issue_refund")


# bugs -------------------------------------------------------------------------------------------
def test_an_unexpected_error_is_one_internal_error_line_exit_1_and_a_logged_traceback(
    accord: Run, db: str, tmp_path: Path
) -> None:
    first = accord("run", f"{BUGGY_MODULE}:explodes", "hello", "--thread", "b1", "--db", db)
    assert first.returncode == 1, (first.stdout, first.stderr)
    assert "Traceback" not in first.stdout + first.stderr
    (line,) = lines(first.stderr)
    assert line == (f"error: internal error: RuntimeError: factory exploded (traceback in {LOG}; "
                    "please report it)")
    log = (tmp_path / LOG).read_text()
    assert log.count("Traceback (most recent call last)") == 1
    assert f"{BUGGY_MODULE}.py" in log and "RuntimeError: factory exploded" in log

    second = accord("graph", f"{BUGGY_MODULE}:explodes")
    assert second.returncode == 1 and lines(second.stderr) == [line]
    log = (tmp_path / LOG).read_text()
    assert log.count("Traceback (most recent call last)") == 2  # appended, not replaced
    assert log.count("\n--- ") + log.startswith("--- ") == 2

    with open_saver(db) as saver:
        assert saver.threads.get("b1") is None and saver.checkpoint_ids("b1") == []


def test_debug_prints_the_traceback_of_an_unexpected_error(accord: Run, db: str,
                                                            tmp_path: Path) -> None:
    done = accord("--debug", "run", f"{BUGGY_MODULE}:explodes", "hello", "--db", db)
    assert done.returncode == 1, (done.stdout, done.stderr)
    err = lines(done.stderr)
    assert err[0] == "Traceback (most recent call last):"
    assert "RuntimeError: factory exploded" in err and any(BUGGY_MODULE in x for x in err)
    assert err[-1] == ("error: internal error: RuntimeError: factory exploded (printed above; "
                       "please report it)")
    assert [x for x in err if x.startswith("error:")] == [err[-1]]
    assert "RuntimeError: factory exploded" in (tmp_path / LOG).read_text()


def test_a_failed_run_is_an_outcome_not_a_bug(accord: Run, db: str, tmp_path: Path) -> None:
    """Exit code 1 with the thread's status and cause; a new request on it is then refused."""
    done = accord("run", f"{BUGGY_MODULE}:fails", "hello", "--thread", "f1", "--db", db)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr and "internal error" not in done.stderr
    assert "f1 failed" in done.stdout and "ValueError: the node gave up" in done.stdout
    assert "resume with: accord resume f1" in done.stdout
    assert not (tmp_path / LOG).exists()

    # a new request on the failed thread: ThreadUnfinished, a user error
    again = accord("run", f"{BUGGY_MODULE}:fails", "hello again", "--thread", "f1", "--db", db)
    user_error(again, "thread 'f1' failed (ValueError: the node gave up); continue it first")
    assert not (tmp_path / LOG).exists()
    with open_saver(db) as saver:
        record = saver.threads.get("f1")
    assert (record.status, record.error, record.epoch) == (
        ThreadStatus.FAILED, "ValueError: the node gave up", 1)


def test_library_warnings_go_to_the_log_file_not_between_output_and_errors(
    accord: Run, db: str, tmp_path: Path
) -> None:
    done = accord("run", f"{BUGGY_MODULE}:noisy", "hello", "--thread", "n1", "--db", db)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stderr == "" and "discarding" not in done.stdout
    assert "WARNING somelib.pool: discarding a closed connection" in (tmp_path / LOG).read_text()

    debug = accord("--debug", "run", f"{BUGGY_MODULE}:noisy", "again", "--thread", "n1",
                   "--db", db)
    assert debug.returncode == 0, (debug.stdout, debug.stderr)
    assert "discarding a closed connection" in debug.stderr


# decisions --------------------------------------------------------------------------------------
def test_reject_with_a_reason_is_recorded_and_refunds_nothing(
    accord: Run, db: str, waiting_refund: str, tmp_path: Path
) -> None:
    done = accord("resume", waiting_refund, "--reject", "too much", "--by", "carol", "--json",
                  "--db", db)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["status"], outcome["interrupt"]) == ("done", None)
    # the reject reached the billing agent, which answered with the reason
    assert outcome["reply"] == "The refund of $480.00 on INV-1002 was not approved: too much"
    [decision] = decisions(db, waiting_refund)
    assert (decision["decision"], decision["reason"], decision["by"], decision["tool"]) == (
        "reject", "too much", "carol", "issue_refund")
    assert "result" not in decision
    assert SupportDB(tmp_path / "support.db").refunds() == []


def test_edit_refunds_the_edited_amount_once(
    accord: Run, db: str, waiting_refund: str, tmp_path: Path
) -> None:
    done = accord("resume", waiting_refund, "--edit", '{"amount": 120}', "--by", "dave", "--json",
                  "--db", db)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "done" and outcome["reply"].startswith("Refunded $120.00 on INV-1002")
    [decision] = decisions(db, waiting_refund)
    assert (decision["decision"], decision["args"]["amount"], decision["by"]) == ("edit", 120,
                                                                                  "dave")
    refunds = SupportDB(tmp_path / "support.db").refunds()
    assert [(r["invoice_id"], r["amount"]) for r in refunds] == [("INV-1002", 120)]

    again = accord("resume", waiting_refund, "--edit", '{"amount": 200}', "--db", db)
    user_error(again, "is finished")
    assert len(SupportDB(tmp_path / "support.db").refunds()) == 1
    assert len(decisions(db, waiting_refund)) == 1


def test_a_bad_edit_is_one_error_line_exit_2_and_the_approval_still_waits(
    accord: Run, db: str, waiting_refund: str, tmp_path: Path
) -> None:
    bad = accord("resume", waiting_refund, "--edit", '{"amount": "abc"}', "--no-input", "--db", db)
    user_error(bad, "invalid edit: amount")
    assert "the approval still waits" in bad.stderr
    assert SupportDB(tmp_path / "support.db").refunds() == []
    done = accord("resume", waiting_refund, "--approve", "--by", "erin", "--json", "--db", db)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "done"
    assert len(SupportDB(tmp_path / "support.db").refunds()) == 1
