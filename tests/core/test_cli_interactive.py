"""At an approval, an interactive `accord run` asks approve / reject / edit (a real terminal)."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pexpect


def spawn(tmp_path: Path, *args: str) -> pexpect.spawn:
    env = {**os.environ, "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"), "COLUMNS": "200",
           "NO_COLOR": "1", "TERM": "dumb"}
    return pexpect.spawn(sys.executable, ["-P", "-m", "accord.cli.main", *args], cwd=str(tmp_path),
                         env=env, encoding="utf-8", timeout=90, dimensions=(50, 200))


def refunds(tmp_path: Path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "support.db") as conn:
        return conn.execute("SELECT invoice_id, amount FROM refunds").fetchall()


def test_interactive_edit_then_done(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/i.db"
    child = spawn(tmp_path, "run", "support", "Please refund invoice INV-1002", "--db", db,
                  "--thread", "i1", "--by", "maria")
    child.expect("approval needed at refund_approval")
    child.expect(r"approve / edit / reject / respond")
    child.sendline("edit")
    child.expect("new args as JSON")
    child.sendline("{not json")
    child.expect("new args as JSON")  # asked again, nothing lost
    child.sendline('{"amount": 150}')
    child.expect("i1 done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert refunds(tmp_path) == [("INV-1002", 150.0)]


def test_interactive_reject_records_the_reason(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/i.db"
    child = spawn(tmp_path, "run", "support", "Please refund invoice INV-1002", "--db", db,
                  "--thread", "i2", "--by", "maria")
    child.expect(r"approve / edit / reject / respond")
    child.sendline("reject")
    child.expect("reason")
    child.sendline("duplicate request")
    child.expect("i2 done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and refunds(tmp_path) == []
    shown = spawn(tmp_path, "show", "i2", "--db", db, "--json")
    shown.expect(pexpect.EOF)
    assert '"decision": "reject"' in shown.before and '"by": "maria"' in shown.before
    assert "duplicate request" in shown.before
