"""accord's tables in PostgreSQL (``timestamptz``, ``jsonb``), and the claim as one statement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from accord.checkpoints.journal import _COLUMNS, VAULT_DDL, Claim, ClaimRule, Dialect, dumps
from accord.checkpoints.letters import POSTGRES_DDL as LETTERS_DDL
from accord.checkpoints.outbox import POSTGRES_DDL as OUTBOX_DDL
from accord.checkpoints.runs import RunKind


def _verbatim(text: str) -> str:
    """psycopg's JSON ``dumps`` for a value that is JSON text already."""
    return text


class PostgresDialect(Dialect):
    name = "postgres"

    def json_in(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(dumps(value), dumps=_verbatim)  # the JSON text, serialised once

    def json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    def ts_in(self, value: datetime) -> Any:
        return value

    def ids(self, thread_ids: Sequence[str]) -> tuple[str, Any]:
        return "= ANY(%s)", [str(t) for t in thread_ids]

    DDL = (
        """CREATE TABLE IF NOT EXISTS accord_threads (
            thread_id TEXT PRIMARY KEY, graph TEXT, status TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, pending JSONB)""",
        """ALTER TABLE accord_threads ADD COLUMN IF NOT EXISTS error TEXT,
            ADD COLUMN IF NOT EXISTS head TEXT,
            ADD COLUMN IF NOT EXISTS epoch BIGINT NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS run_id TEXT, ADD COLUMN IF NOT EXISTS input JSONB,
            ADD COLUMN IF NOT EXISTS trace TEXT""",
        """CREATE INDEX IF NOT EXISTS accord_threads_status_updated
            ON accord_threads (status, updated_at)""",
        "CREATE INDEX IF NOT EXISTS accord_threads_updated ON accord_threads (updated_at)",
        """CREATE TABLE IF NOT EXISTS accord_audit (
            seq BIGSERIAL PRIMARY KEY, thread_id TEXT NOT NULL, event_id TEXT NOT NULL,
            checkpoint_id TEXT, kind TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, node TEXT,
            agent TEXT, task_id TEXT, event JSONB NOT NULL, UNIQUE (thread_id, event_id))""",
        "CREATE INDEX IF NOT EXISTS accord_audit_thread ON accord_audit (thread_id, seq)",
        "CREATE INDEX IF NOT EXISTS accord_audit_kind ON accord_audit (kind, at)",
        """CREATE TABLE IF NOT EXISTS accord_ledger (
            thread_id TEXT NOT NULL, key TEXT NOT NULL, tool TEXT NOT NULL, result TEXT NOT NULL,
            at TIMESTAMPTZ NOT NULL, PRIMARY KEY (thread_id, key))""",
        VAULT_DDL,
        *LETTERS_DDL,
        *OUTBOX_DDL,
    )

    def fence(self, cur: Any, thread_id: str, epoch: int, head: str | None, input_saved: bool,
              now: datetime) -> bool:
        """As the base's, answered by a returned row rather than ``rowcount``: a run's writes
        go through a pipeline, where a statement's row count is known only once it is read."""
        cur.execute(
            "UPDATE accord_threads SET head = COALESCE(%s, head), updated_at = %s,"
            " status = 'running', pending = NULL,"
            " input = CASE WHEN %s THEN NULL ELSE input END"
            " WHERE thread_id = %s AND epoch = %s RETURNING epoch",
            (head, now, input_saved, thread_id, epoch))
        return cur.fetchone() is not None

    def finish(self, cur: Any, thread_id: str, epoch: int, status: Any, pending: Any,
               error: str | None, now: datetime) -> bool:
        """As the base's, answered by a returned row (see ``fence``)."""
        cur.execute(
            "UPDATE accord_threads SET status = %s, pending = %s, error = %s, run_id = NULL,"
            " updated_at = %s WHERE thread_id = %s AND epoch = %s RETURNING epoch",
            (status.value, self.json_in(pending) if pending is not None else None, error,
             now, thread_id, epoch))
        return cur.fetchone() is not None

    def setup(self, cur: Any) -> None:
        for ddl in self.DDL:
            cur.execute(ddl)

    def claim(self, cur: Any, spec: Any, rule: ClaimRule, lock_key: int,
              now: datetime) -> tuple[bool, Claim]:
        """Take the thread's advisory lock and claim it, in one statement (one round trip).

        The previous row is read ``FOR UPDATE``: a run that ends in another session releases
        the lock inside its last transaction, so the claim waits for that transaction and
        judges the thread by the status it committed.
        """
        cur.execute(
            "WITH lk AS (SELECT pg_try_advisory_lock(%(key)s) AS ok),"
            f" prev AS (SELECT {_COLUMNS} FROM accord_threads WHERE thread_id = %(thread)s"
            "   FOR UPDATE),"
            " flags AS (SELECT EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = %(thread)s"
            "   AND checkpoint_ns = '') AS saved,"
            "   EXISTS (SELECT 1 FROM accord_ledger WHERE thread_id = %(thread)s) AS ledger),"
            " claim AS (INSERT INTO accord_threads AS t (thread_id, graph, status, created_at,"
            "   updated_at, epoch, run_id, input, trace)"
            "   SELECT %(thread)s, %(graph)s, 'running', %(now)s, %(now)s, 1, %(run)s, %(input)s,"
            "   %(trace)s"
            "   FROM lk, flags WHERE lk.ok AND CASE WHEN EXISTS (SELECT 1 FROM prev)"
            "     THEN %(any)s OR (SELECT status FROM prev) = ANY(%(statuses)s)"
            "     ELSE %(missing)s OR (%(if_saved)s AND flags.saved) END"
            "   AND (%(expect)s::bigint IS NULL"
            "     OR COALESCE((SELECT epoch FROM prev), 0) = %(expect)s::bigint)"
            "   ON CONFLICT (thread_id) DO UPDATE SET graph = COALESCE(excluded.graph, t.graph),"
            "   status = CASE WHEN %(keep)s THEN t.status ELSE 'running' END,"
            "   pending = CASE WHEN %(keep)s THEN t.pending ELSE NULL END,"
            "   updated_at = excluded.updated_at, trace = COALESCE(excluded.trace, t.trace),"
            "   error = NULL, epoch = t.epoch + 1, run_id = excluded.run_id,"
            "   input = COALESCE(excluded.input, t.input) RETURNING epoch, input)"
            " SELECT lk.ok AS locked, flags.saved, flags.ledger,"
            "   (SELECT epoch FROM claim) AS epoch, (SELECT input FROM claim) AS claimed_input,"
            "   (SELECT row_to_json(p) FROM prev p) AS prev FROM lk, flags",
            {
                "key": lock_key, "thread": spec.thread_id, "graph": spec.graph,
                "now": now, "run": spec.run_id, "trace": spec.trace,
                "input": self.json_in(spec.input) if spec.input is not None else None,
                "any": rule.statuses is None,
                "statuses": sorted(s.value for s in (rule.statuses or ())),
                "missing": rule.missing, "if_saved": rule.missing_if_saved,
                "keep": spec.kind == RunKind.RESUME, "expect": spec.expect_epoch,
            },
        )
        row = cur.fetchone()
        previous = self.record(row["prev"])
        claim = Claim(
            epoch=row["epoch"], previous=previous,
            recorded_input=self.json_out(row["claimed_input"]) if row["epoch"] is not None
            else (previous.input if previous else None),
            has_checkpoints=bool(row["saved"]), has_ledger=bool(row["ledger"]),
        )
        return bool(row["locked"]), claim



POSTGRES = PostgresDialect()

__all__ = ["POSTGRES", "PostgresDialect"]
