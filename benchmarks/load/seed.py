"""The load test's company: the support example's database with one invoice per request."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from accord.graphs.support import SupportDB


def seed_invoices(path: Path, start: int, count: int, amount: float = 500.0) -> None:
    """Add invoices ``INV-<start>`` … ``INV-<start+count-1>`` (customer 1, paid) to a fresh
    copy of the support database at ``path``."""
    if start < 2000 or start + count > 10000:
        raise ValueError("load invoices are numbered INV-2000 … INV-9999")
    SupportDB(path).connect().close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT OR IGNORE INTO invoices (id, customer_id, amount, status, issued_at,"
            " description) VALUES (?, 1, ?, 'paid', '2026-11-01', 'Load test')",
            [(f"INV-{n:04d}", amount) for n in range(start, start + count)])


__all__ = ["seed_invoices"]
