"""accord's tables beside LangGraph's checkpoints, in SQLite and PostgreSQL.

- ``accord_threads``: the thread index (status, pending approval, cause of failure), the
  fencing token (``epoch``) and the request recorded before work starts (``input``);
- ``accord_audit``: the append-only audit log, one row per event, written in the transaction
  of the step that produced it (``event_id`` unique per thread: a step saved again after a crash
  records nothing twice);
- ``accord_ledger``: the tool ledger, each tool result recorded the moment it exists;
- ``accord_pii_vault``: the real values behind a thread's PII placeholders
  (``accord.guardrails.vault``), kept outside the checkpoints and deleted with the thread;
- ``accord_dead_letters``: work accord could not finish, kept to retry (``letters.py``);
- ``accord_outbox``: events for other systems, relayed to a broker (``outbox.py``).

Every function takes an open DB-API cursor inside the caller's transaction; the saver decides
what goes into one transaction. The SQL is written once with ``%s`` placeholders.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accord.checkpoints.letters import SQLITE_DDL as LETTERS_DDL
from accord.checkpoints.outbox import SQLITE_DDL as OUTBOX_DDL
from accord.checkpoints.outbox import insert_outbox
from accord.checkpoints.runs import RunKind
from accord.checkpoints.threads import ThreadRecord
from accord.records import AuditEvent, ThreadStatus

VAULT_DDL = (
    "CREATE TABLE IF NOT EXISTS accord_pii_vault (thread_id TEXT NOT NULL,"
    " placeholder TEXT NOT NULL, value TEXT NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY (thread_id, placeholder))"
)
"""The PII vault's table (the same on SQLite and PostgreSQL)."""

_COLUMNS = (
    "thread_id, graph, status, created_at, updated_at, pending, error, head, epoch, run_id, input,"
    " trace"
)


@dataclass(frozen=True)
class ClaimRule:
    """Which thread states a run of one kind may start from."""

    statuses: frozenset[ThreadStatus] | None
    """Allowed statuses of an indexed thread (None: any)."""
    missing: bool
    """Whether a thread the index does not know may be claimed."""
    missing_if_saved: bool = False
    """...provided it has checkpoints (a thread saved before the index existed)."""

    def allows(self, previous: ThreadRecord | None, has_checkpoints: bool,
               expect_epoch: int | None = None) -> bool:
        if expect_epoch is not None and (previous.epoch if previous else 0) != expect_epoch:
            return False  # another run claimed the thread since the caller looked
        if previous is None:
            return self.missing or (self.missing_if_saved and has_checkpoints)
        return self.statuses is None or previous.status in self.statuses


CLAIM_RULES: dict[RunKind, ClaimRule] = {
    RunKind.NEW: ClaimRule(frozenset({ThreadStatus.DONE}), missing=True),
    RunKind.RESUME: ClaimRule(frozenset({ThreadStatus.INTERRUPTED}), missing=False),
    RunKind.CONTINUE: ClaimRule(None, missing=False, missing_if_saved=True),
    RunKind.UPDATE: ClaimRule(None, missing=True),
    RunKind.REPLAY: ClaimRule(None, missing=False, missing_if_saved=True),
}


@dataclass(frozen=True)
class Claim:
    """What claiming a thread found."""

    epoch: int | None
    """The run's fencing token, or None when the thread's state refused the run."""
    previous: ThreadRecord | None
    """The thread's record before the claim."""
    recorded_input: Any
    """A request recorded earlier whose checkpoint was never saved."""
    has_checkpoints: bool
    has_ledger: bool


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def dumps(value: Any) -> str:
    """JSON text for a value that may hold non-JSON leaves (they become strings)."""
    return json.dumps(value, default=str, ensure_ascii=False)


class Dialect:
    """The SQL differences between SQLite and PostgreSQL, and nothing else."""

    name = "base"

    def sql(self, text: str) -> str:
        return text

    def json_in(self, value: Any) -> Any:
        raise NotImplementedError

    def json_out(self, value: Any) -> Any:
        raise NotImplementedError

    def ts_in(self, value: datetime) -> Any:
        raise NotImplementedError

    def ids(self, thread_ids: Sequence[str]) -> tuple[str, Any]:
        """A ``thread_id IN (...)`` clause and its one parameter."""
        raise NotImplementedError

    def setup(self, cur: Any) -> None:
        raise NotImplementedError

    # rows -----------------------------------------------------------------------------------
    def record(self, row: Sequence[Any] | dict[str, Any] | None) -> ThreadRecord | None:
        if row is None:
            return None
        if not isinstance(row, dict):
            row = dict(zip(_COLUMNS.split(", "), row, strict=True))
        return ThreadRecord(
            thread_id=row["thread_id"],
            graph=row["graph"],
            status=ThreadStatus(row["status"]),
            created_at=_ts(row["created_at"]),
            updated_at=_ts(row["updated_at"]),
            pending=self.json_out(row["pending"]),
            error=row["error"],
            head=row["head"],
            epoch=int(row["epoch"] or 0),
            run_id=row["run_id"],
            input=self.json_out(row["input"]),
            trace=row.get("trace"),
        )

    # statements -------------------------------------------------------------------------------
    def read_thread(self, cur: Any, thread_id: str) -> ThreadRecord | None:
        cur.execute(self.sql(f"SELECT {_COLUMNS} FROM accord_threads WHERE thread_id = %s"),
                    (thread_id,))
        return self.record(cur.fetchone())

    def flags(self, cur: Any, thread_id: str) -> tuple[bool, bool]:
        cur.execute(self.sql(
            "SELECT EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''),"
            " EXISTS (SELECT 1 FROM accord_ledger WHERE thread_id = %s)"), (thread_id, thread_id))
        row = cur.fetchone()
        values = list(row.values()) if isinstance(row, dict) else list(row)
        return bool(values[0]), bool(values[1])

    def upsert_claim(self, cur: Any, spec: Any, now: datetime) -> tuple[int, Any]:
        """Claim an allowed thread: epoch + 1, the request recorded, status ``running`` (a
        decision keeps ``interrupted`` and its payload until the run first writes)."""
        keep = spec.kind == RunKind.RESUME
        cur.execute(self.sql(
            "INSERT INTO accord_threads AS t (thread_id, graph, status, created_at, updated_at,"
            " epoch, run_id, input, trace) VALUES (%s, %s, 'running', %s, %s, 1, %s, %s, %s)"
            " ON CONFLICT (thread_id) DO UPDATE SET graph = COALESCE(excluded.graph, t.graph),"
            " trace = COALESCE(excluded.trace, t.trace),"
            " status = CASE WHEN %s THEN t.status ELSE 'running' END,"
            " pending = CASE WHEN %s THEN t.pending ELSE NULL END,"
            " updated_at = excluded.updated_at, error = NULL,"
            " epoch = t.epoch + 1, run_id = excluded.run_id,"
            " input = COALESCE(excluded.input, t.input) RETURNING epoch, input"),
            (spec.thread_id, spec.graph, self.ts_in(now), self.ts_in(now), spec.run_id,
             self.json_in(spec.input) if spec.input is not None else None, spec.trace, keep,
             keep))
        row = cur.fetchone()
        values = list(row.values()) if isinstance(row, dict) else list(row)
        return int(values[0]), self.json_out(values[1])

    def upsert_thread(self, cur: Any, thread_id: str, graph: str | None, status: ThreadStatus,
                      pending: Any, now: datetime) -> ThreadRecord:
        """Record a thread's status by hand (``graph=None`` keeps the recorded graph)."""
        cur.execute(self.sql(
            f"INSERT INTO accord_threads AS t ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, NULL,"
            " NULL, 0, NULL, NULL, NULL) ON CONFLICT (thread_id) DO UPDATE SET"
            " graph = COALESCE(excluded.graph, t.graph), status = excluded.status,"
            f" updated_at = excluded.updated_at, pending = excluded.pending RETURNING {_COLUMNS}"),
            (thread_id, graph, status.value, self.ts_in(now), self.ts_in(now),
             self.json_in(pending) if pending is not None else None))
        record = self.record(cur.fetchone())
        assert record is not None
        return record

    def fence(self, cur: Any, thread_id: str, epoch: int, head: str | None, input_saved: bool,
              now: datetime) -> bool:
        """Move the thread's head; False when another run holds the thread (a newer epoch)."""
        cur.execute(self.sql(
            "UPDATE accord_threads SET head = COALESCE(%s, head), updated_at = %s,"
            " status = 'running', pending = NULL,"
            " input = CASE WHEN %s THEN NULL ELSE input END"
            " WHERE thread_id = %s AND epoch = %s"),
            (head, self.ts_in(now), input_saved, thread_id, epoch))
        return cur.rowcount == 1

    def finish(self, cur: Any, thread_id: str, epoch: int, status: ThreadStatus, pending: Any,
               error: str | None, now: datetime) -> bool:
        """Record how the run ended; False when another run holds the thread."""
        cur.execute(self.sql(
            "UPDATE accord_threads SET status = %s, pending = %s, error = %s, run_id = NULL,"
            " updated_at = %s WHERE thread_id = %s AND epoch = %s"),
            (status.value, self.json_in(pending) if pending is not None else None, error,
             self.ts_in(now), thread_id, epoch))
        return cur.rowcount == 1

    def insert_events(self, cur: Any, thread_id: str,
                      events: Iterable[tuple[str | None, dict[str, Any]]]) -> None:
        rows = [
            (thread_id, event["id"], checkpoint_id, event["kind"],
             self.ts_in(_ts(event.get("at") or _iso(datetime.now(UTC)))),
             event.get("node"), event.get("agent"), event.get("task_id"), self.json_in(event))
            for checkpoint_id, event in events
        ]
        if rows:
            cur.executemany(self.sql(
                "INSERT INTO accord_audit (thread_id, event_id, checkpoint_id, kind, at, node,"
                " agent, task_id, event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (thread_id, event_id) DO NOTHING"), rows)

    def insert_outbox(self, cur: Any, events: list[dict[str, Any]]) -> None:
        """Outbox rows (``accord.checkpoints.outbox``) in the caller's transaction."""
        insert_outbox(self, cur, events)

    def audit(self, cur: Any, thread_id: str) -> list[AuditEvent]:
        cur.execute(self.sql("SELECT event FROM accord_audit WHERE thread_id = %s ORDER BY seq"),
                    (thread_id,))
        out = []
        for row in cur.fetchall():
            value = row["event"] if isinstance(row, dict) else row[0]
            out.append(AuditEvent.model_validate(self.json_out(value)))
        return out

    def record_result(self, cur: Any, thread_id: str, key: str, tool: str, text: str,
                      now: datetime) -> None:
        cur.execute(self.sql(
            "INSERT INTO accord_ledger (thread_id, key, tool, result, at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (thread_id, key) DO NOTHING"),
            (thread_id, key, tool, text, self.ts_in(now)))

    def recall_result(self, cur: Any, thread_id: str, key: str) -> str | None:
        cur.execute(self.sql("SELECT result FROM accord_ledger WHERE thread_id = %s AND key = %s"),
                    (thread_id, key))
        row = cur.fetchone()
        if row is None:
            return None
        return row["result"] if isinstance(row, dict) else row[0]

    def checkpoint_ids(self, cur: Any, thread_id: str) -> list[tuple[str, str | None]]:
        """A thread's root checkpoints (id, parent id), newest first, without reading them."""
        cur.execute(self.sql(
            "SELECT checkpoint_id, parent_checkpoint_id FROM checkpoints WHERE thread_id = %s"
            " AND checkpoint_ns = '' ORDER BY checkpoint_id DESC"), (thread_id,))
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cur.fetchall()]

    def list_threads(self, cur: Any, status: ThreadStatus | str | None, limit: int | None,
                     updated_before: datetime | None) -> list[ThreadRecord]:
        clauses, params = [], []
        if status is not None:
            clauses.append("status = %s")
            params.append(ThreadStatus(status).value)
        if updated_before is not None:
            clauses.append("updated_at < %s")
            params.append(self.ts_in(updated_before))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT {_COLUMNS} FROM accord_threads{where} ORDER BY updated_at DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        cur.execute(self.sql(sql), params)
        return [r for r in (self.record(row) for row in cur.fetchall()) if r is not None]

    def delete_threads(self, cur: Any, thread_ids: Sequence[str]) -> int:
        clause, param = self.ids(thread_ids)
        deleted = 0
        for table in ("accord_threads", "accord_audit", "accord_ledger", "accord_pii_vault",
                      "accord_dead_letters"):
            cur.execute(self.sql(f"DELETE FROM {table} WHERE thread_id {clause}"), (param,))
            if table == "accord_threads":
                deleted = cur.rowcount
        return deleted


class SqliteDialect(Dialect):
    name = "sqlite"

    def sql(self, text: str) -> str:
        return text.replace("%s", "?")

    def json_in(self, value: Any) -> Any:
        return dumps(value)

    def json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    def ts_in(self, value: datetime) -> Any:
        return _iso(value)

    def ids(self, thread_ids: Sequence[str]) -> tuple[str, Any]:
        return "IN (SELECT value FROM json_each(?))", json.dumps([str(t) for t in thread_ids])

    def setup(self, cur: Any) -> None:
        cur.executescript(
            """
            CREATE TABLE IF NOT EXISTS accord_threads (
                thread_id TEXT PRIMARY KEY, graph TEXT, status TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL, pending TEXT);
            CREATE INDEX IF NOT EXISTS accord_threads_status_updated
                ON accord_threads (status, updated_at);
            CREATE INDEX IF NOT EXISTS accord_threads_updated ON accord_threads (updated_at);
            CREATE TABLE IF NOT EXISTS accord_audit (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL,
                event_id TEXT NOT NULL, checkpoint_id TEXT, kind TEXT NOT NULL, at TEXT NOT NULL,
                node TEXT, agent TEXT, task_id TEXT, event TEXT NOT NULL,
                UNIQUE (thread_id, event_id));
            CREATE INDEX IF NOT EXISTS accord_audit_thread ON accord_audit (thread_id, seq);
            CREATE INDEX IF NOT EXISTS accord_audit_kind ON accord_audit (kind, at);
            CREATE TABLE IF NOT EXISTS accord_ledger (
                thread_id TEXT NOT NULL, key TEXT NOT NULL, tool TEXT NOT NULL,
                result TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (thread_id, key));
            """
        )
        cur.execute(VAULT_DDL)
        for ddl in (*LETTERS_DDL, *OUTBOX_DDL):
            cur.execute(ddl)
        for column in ("error TEXT", "head TEXT", "epoch INTEGER NOT NULL DEFAULT 0",
                       "run_id TEXT", "input TEXT", "trace TEXT"):
            try:  # databases made before these columns existed
                cur.execute(f"ALTER TABLE accord_threads ADD COLUMN {column}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


SQLITE = SqliteDialect()


def claim_in_transaction(dialect: Dialect, cur: Any, spec: Any, rule: ClaimRule,
                         now: datetime) -> Claim:
    """Claim a thread inside an open write transaction (SQLite; the lock is taken already)."""
    previous = dialect.read_thread(cur, spec.thread_id)
    has_checkpoints, has_ledger = dialect.flags(cur, spec.thread_id)
    if not rule.allows(previous, has_checkpoints, spec.expect_epoch):
        return Claim(None, previous, previous.input if previous else None, has_checkpoints,
                     has_ledger)
    epoch, recorded = dialect.upsert_claim(cur, spec, now)
    return Claim(epoch, previous, recorded, has_checkpoints, has_ledger)


__all__ = [
    "CLAIM_RULES",
    "SQLITE",
    "Claim",
    "ClaimRule",
    "Dialect",
    "SqliteDialect",
    "VAULT_DDL",
    "claim_in_transaction",
    "dumps",
]
