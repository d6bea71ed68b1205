"""The support example's embedded SQLite database and the tools that act on it.

Side-effecting tools take an ``idempotency_key`` (hidden from the model): a repeated call with
the same key returns the recorded result instead of acting twice, which is what makes an
approved refund happen once even when LangGraph re-runs a node after a resume or a crash.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from langchain_core.tools import BaseTool, InjectedToolArg, tool
from pydantic import Field

from accord.agents.actions import read_only
from accord.guardrails.permissions import visible_to
from accord.guardrails.vault import conceal, reveal

DEFAULT_SUPPORT_DB = ".accord/support.db"


def support_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path, else ``ACCORD_SUPPORT_DB``, else ``.accord/support.db``."""
    return Path(path or os.environ.get("ACCORD_SUPPORT_DB") or DEFAULT_SUPPORT_DB)


class SupportDB:
    """The sample company's data; each call opens its own connection (safe across processes)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = support_db_path(path)
        self._ready = False

    def connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            seed = resources.files("accord.graphs.support").joinpath("data/support.sql").read_text()
            with closing(sqlite3.connect(self.path, timeout=30)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(seed)
                conn.commit()
            self._ready = True
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with closing(self.connect()) as conn:
            return [dict(row) for row in conn.execute(sql, params)]

    def _insert_once(self, table: str, key: str, sql: str, *params: Any) -> dict[str, Any]:
        with closing(self.connect()) as conn, conn:
            conn.execute(sql, params)
            row = conn.execute(f"SELECT * FROM {table} WHERE idempotency_key = ?", (key,)).fetchone()
            return dict(row)

    # reads ---------------------------------------------------------------------------------
    def customer(self, email: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM customers WHERE lower(email) = lower(?)", email)
        return rows[0] if rows else None

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        with closing(self.connect()) as conn:
            return self._invoice(conn, invoice_id)

    @staticmethod
    def _invoice(conn: sqlite3.Connection, invoice_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT i.*, c.email, c.name, "
            "COALESCE((SELECT SUM(amount) FROM refunds r WHERE r.invoice_id = i.id), 0) AS refunded "
            "FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE i.id = upper(?)",
            (invoice_id,),
        ).fetchone()
        return dict(row) if row is not None else None

    def invoices_of(self, email: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT i.* FROM invoices i JOIN customers c ON c.id = i.customer_id "
            "WHERE lower(c.email) = lower(?) ORDER BY i.issued_at",
            email,
        )

    def search_kb(self, text: str) -> list[dict[str, Any]]:
        words = {w.strip(".,!?:;").lower() for w in text.split()}
        scored = []
        for article in self.query("SELECT * FROM kb_articles"):
            score = len(words & set(article["keywords"].split()))
            if score:
                scored.append((score, article))
        return [a for _, a in sorted(scored, key=lambda p: -p[0])]

    def refunds(self, invoice_id: str | None = None) -> list[dict[str, Any]]:
        if invoice_id is None:
            return self.query("SELECT * FROM refunds ORDER BY id")
        return self.query("SELECT * FROM refunds WHERE invoice_id = ? ORDER BY id", invoice_id)

    def tickets(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM tickets ORDER BY id")

    # writes (idempotent) -----------------------------------------------------------------------
    def refund(self, invoice_id: str, amount: float, reason: str, key: str) -> dict[str, Any]:
        """Refund once per key; what is left on the invoice is checked and the refund written in
        one write transaction, so concurrent refunds never exceed the invoice."""
        with closing(self.connect()) as conn:
            conn.isolation_level = None  # explicit transactions
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: no check-then-insert race
            try:
                existing = conn.execute("SELECT * FROM refunds WHERE idempotency_key = ?",
                                        (key,)).fetchone()
                if existing is not None:
                    conn.execute("COMMIT")
                    return dict(existing)
                invoice = self._invoice(conn, invoice_id)
                if invoice is None:
                    raise ValueError(f"unknown invoice {invoice_id}")
                left = invoice["amount"] - invoice["refunded"]
                if amount <= 0 or amount > left + 1e-9:
                    raise ValueError(f"refund of {amount:.2f} exceeds what is left on "
                                     f"{invoice['id']} ({left:.2f})")
                conn.execute("INSERT INTO refunds (invoice_id, amount, reason, idempotency_key) "
                             "VALUES (?, ?, ?, ?)", (invoice["id"], amount, reason, key))
                row = conn.execute("SELECT * FROM refunds WHERE idempotency_key = ?",
                                   (key,)).fetchone()
                conn.execute("COMMIT")
                return dict(row)
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def ticket(self, email: str | None, subject: str, body: str, queue: str, key: str) -> dict[str, Any]:
        return self._insert_once(
            "tickets", key,
            "INSERT OR IGNORE INTO tickets (customer_email, subject, body, queue, idempotency_key) "
            "VALUES (?, ?, ?, ?, ?)",
            email, subject, body, queue, key,
        )

    def password_reset(self, email: str, key: str) -> dict[str, Any]:
        if self.customer(email) is None:
            raise ValueError(f"no customer with email {email}")
        return self._insert_once(
            "password_resets", key,
            "INSERT OR IGNORE INTO password_resets (email, idempotency_key) VALUES (?, ?)",
            email, key,
        )


Key = Annotated[str, InjectedToolArg]


def _owner(record: Any) -> Any:
    """The customer a record belongs to (its email), None for an error."""
    return record.get("email") if isinstance(record, dict) and "error" not in record else None


def support_tools(db: SupportDB) -> list[BaseTool]:
    """The example's tools, bound to one database.

    A run for a known end user (``configurable.user_id``: the customer's email) sees only that
    customer's record, invoices and refunds (``visible_to``); a run without one sees any.
    """

    def invoice_owner(args: Any) -> Any:
        return _owner(db.invoice(str(args.get("invoice_id", ""))))

    @visible_to(result_owner=_owner)
    @read_only
    @tool
    def lookup_customer(email: str) -> dict[str, Any]:
        """Look up a customer by email, with their invoices."""
        real = reveal(email)
        customer = db.customer(real)
        if customer is None:
            return {"error": f"no customer with email {email}"}
        return conceal({**customer, "invoices": db.invoices_of(real)})

    @visible_to(result_owner=_owner)
    @read_only
    @tool
    def get_invoice(invoice_id: str) -> dict[str, Any]:
        """Get an invoice (amount, status, what was already refunded) by id, e.g. INV-1002."""
        return conceal(db.invoice(invoice_id)) or {"error": f"unknown invoice {invoice_id}"}

    @visible_to(owner=invoice_owner)
    @tool
    def issue_refund(invoice_id: str, amount: Annotated[float, Field(gt=0)], reason: str, idempotency_key: Key = "") -> dict[str, Any]:
        """Refund part or all of an invoice. Large refunds are held for human approval."""
        refund = db.refund(invoice_id, amount, reason, idempotency_key or f"direct:{invoice_id}:{amount}")
        return {"refund_id": refund["id"], "invoice_id": refund["invoice_id"], "amount": refund["amount"]}

    @read_only
    @tool
    def search_kb(query: str) -> list[dict[str, Any]]:
        """Search the troubleshooting knowledge base."""
        return db.search_kb(query)[:2]

    @tool
    def create_ticket(subject: str, body: str, queue: str = "support", customer_email: str | None = None,
                      idempotency_key: Key = "") -> dict[str, Any]:
        """Open a ticket for a human team (queue: support, engineering, billing, escalations)."""
        ticket = db.ticket(reveal(customer_email), subject, body, queue,
                           idempotency_key or f"direct:{subject}")
        return {"ticket_id": ticket["id"], "queue": ticket["queue"], "status": ticket["status"]}

    @visible_to(owner=lambda args: args.get("email"))
    @tool
    def send_password_reset(email: str, idempotency_key: Key = "") -> dict[str, Any]:
        """Send a password-reset link to a customer's email."""
        reset = db.password_reset(reveal(email), idempotency_key or f"direct:{email}")
        return conceal({"reset_id": reset["id"], "email": reset["email"]})

    return [lookup_customer, get_invoice, issue_refund, search_kb, create_ticket, send_password_reset]
