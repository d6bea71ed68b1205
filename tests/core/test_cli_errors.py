"""User errors in the CLI: exit code 2, one `error:` line on stderr, never a traceback, and no
saved state lost."""

from __future__ import annotations

import asyncio

import pytest

from accord.engine.session import Session


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/accord.db"


@pytest.fixture
def finished_thread(db, tmp_path, monkeypatch) -> str:
    """A thread that ran to the end (created in-process through the CLI's session)."""
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))

    async def run():
        async with Session.open(db) as session:
            return await session.run("support", "my app crashes on start", "finished-1",
                                     lambda node, update: None)

    outcome = asyncio.run(run())
    assert outcome.status == "done"
    return outcome.thread_id


def user_error(result, expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    # `run support` prints a dim mode line ("support: ...") before it starts; nothing else.
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("support: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    return lines[0]


def test_unknown_graph(accord, db):
    user_error(accord("run", "nosuch", "hi", "--db", db), "unknown graph 'nosuch'; known graphs: desk, support")


def test_unknown_thread(accord, db):
    user_error(accord("resume", "no-such-thread", "--approve", "--db", db), "unknown thread 'no-such-thread'")


def test_show_unknown_thread(accord, db):
    user_error(accord("show", "no-such-thread", "--db", db), "unknown thread 'no-such-thread'")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [("{amount: 200", "--edit is not valid JSON"), ("[200]", "args: Input should be a valid dictionary")],
)
def test_malformed_edit(accord, db, edit, expected):
    user_error(accord("resume", "any-thread", "--edit", edit, "--db", db), expected)


def test_two_decisions_at_once(accord, db):
    user_error(accord("resume", "any-thread", "--approve", "--reject", "no", "--db", db), "choose one of")


def test_resume_of_a_finished_thread(accord, db, finished_thread):
    user_error(accord("resume", finished_thread, "--approve", "--db", db), "is finished")
    user_error(accord("resume", finished_thread, "--db", db), "is finished; nothing to resume")
    # the thread is untouched
    async def show():
        async with Session.open(db) as session:
            return await session.show(finished_thread)

    outcome, snapshot, _, _ = asyncio.run(show())
    assert outcome.status == "done" and snapshot.next == ()


def test_unreachable_database(accord):
    line = user_error(accord("run", "support", "hi", "--db", "postgresql://postgres@127.0.0.1:1/x"),
                      "cannot reach database")
    assert "127.0.0.1:1" in line


@pytest.mark.parametrize("command", [["run", "support", "hi"], ["threads"], ["resume", "t", "--approve"]])
def test_unknown_db_scheme(accord, command):
    user_error(accord(*command, "--db", "foo://x"), "unknown database URL scheme 'foo'")


def test_unknown_status_filter(accord, db):
    user_error(accord("threads", "--status", "sleeping", "--db", db), "unknown status 'sleeping'")


def test_oversize_message_is_refused_before_anything_is_saved(accord, db):
    line = user_error(accord("run", "support", "x" * 9000, "--db", db, "--thread", "big"),
                      "message is 9000 characters; the limit is 8000")
    assert "max_input_length" in line
    listed = accord("threads", "--db", db, "--json")
    assert listed.returncode == 0 and "big" not in listed.stdout
