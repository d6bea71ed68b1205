"""accord's SQLite saver: the stock ``SqliteSaver`` with runs (see ``accord_saver.py``) and
``prune``, which the stock SQLite saver lacks.

One connection serves the saver (guarded by its lock, as in the stock saver); a run's writes
go into one ``BEGIN IMMEDIATE`` transaction together with accord's tables, and the stock
``put``/``put_writes`` SQL joins that transaction. Each thread is pruned in one transaction
too, so a concurrent writer either commits before the prune reads the thread or waits for it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

from accord.checkpoints.accord_saver import AccordSaver
from accord.checkpoints.journal import SQLITE, Claim, ClaimRule, claim_in_transaction
from accord.checkpoints.keep_latest import (
    TASKS_CHANNEL,
    CheckpointRow,
    plan_keep_latest,
    refuse_delta,
    uses_delta,
)
from accord.checkpoints.locks import FileLocks, ProcessLocks
from accord.checkpoints.runs import RunHandle, RunSpec

# One statement, its parameters and whether its rows are sent back into the generator.
_Statements = Generator[tuple[str, Sequence[Any], bool], list[tuple], None]

_IN_JSON = "IN (SELECT value FROM json_each(?))"

_SELECT_CHECKPOINTS = (
    "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
    "FROM checkpoints WHERE thread_id = ?"
)
_ORPHAN_PARENTS = (
    "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ? "
    f"AND checkpoint_ns = ? AND checkpoint_id {_IN_JSON} "
    f"AND parent_checkpoint_id NOT {_IN_JSON}"
)
_SELECT_SENDS = (
    "SELECT DISTINCT checkpoint_ns, checkpoint_id FROM writes WHERE thread_id = ? AND channel = ?"
)


def _delete_threads(thread_ids: list[str]) -> _Statements:
    ids = json.dumps(thread_ids)
    yield f"DELETE FROM checkpoints WHERE thread_id {_IN_JSON}", (ids,), False
    yield f"DELETE FROM writes WHERE thread_id {_IN_JSON}", (ids,), False


def _delta_threads(thread_ids: list[str], serde: SerializerProtocol) -> Generator[Any, Any, set]:
    found: set[str] = set()
    for thread_id in thread_ids:
        rows = yield (
            "SELECT type, checkpoint, metadata FROM checkpoints WHERE thread_id = ?",
            (thread_id,),
            True,
        )
        for type_, blob, meta in rows:
            values = serde.loads_typed((type_, blob)).get("channel_values", {}).values()
            if uses_delta(json.loads(meta) if meta else None, values):
                found.add(thread_id)
                break
    return found


def _keep_latest(thread_id: str, serde: SerializerProtocol) -> _Statements:
    rows = yield _SELECT_CHECKPOINTS, (thread_id,), True
    sends = yield _SELECT_SENDS, (thread_id, TASKS_CHANNEL), True
    with_sends = {(ns, cid) for ns, cid in sends}
    parsed = []
    for ns, cid, parent, type_, blob, meta in rows:
        checkpoint = serde.loads_typed((type_, blob))
        metadata = json.loads(meta) if meta else {}
        parsed.append(
            CheckpointRow(
                checkpoint_ns=ns,
                checkpoint_id=cid,
                parent_id=parent,
                version=int(checkpoint.get("v", 1)),
                root_id=(metadata.get("parents") or {}).get(""),
                uses_delta=uses_delta(metadata, checkpoint.get("channel_values", {}).values()),
            )
        )
    refuse_delta({thread_id} if any(r.uses_delta for r in parsed) else ())
    plan = plan_keep_latest(parsed, lambda ns, cid: (ns, cid) in with_sends)
    if plan.dropped_namespaces:
        dropped = json.dumps(sorted(plan.dropped_namespaces))
        for table in ("checkpoints", "writes"):
            yield (
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns {_IN_JSON}",
                (thread_id, dropped),
                False,
            )
    for ns, keep in plan.kept.items():
        gone = json.dumps(
            [
                r.checkpoint_id
                for r in parsed
                if r.checkpoint_ns == ns and r.checkpoint_id not in keep
            ]
        )
        kept = json.dumps(sorted(keep))
        for table in ("writes", "checkpoints"):
            sql = (
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = ? "
                f"AND checkpoint_id {_IN_JSON}"
            )
            yield sql, (thread_id, ns, gone), False
        yield _ORPHAN_PARENTS, (thread_id, ns, kept, kept), False


def _run(cur: Any, statements: Generator) -> Any:
    try:
        sql, params, fetch = next(statements)
        while True:
            cur.execute(sql, params)
            sql, params, fetch = statements.send(cur.fetchall() if fetch else [])
    except StopIteration as stop:
        return stop.value

T = TypeVar("T")


class AccordSqliteSaver(AccordSaver, SqliteSaver):
    """The stock ``SqliteSaver`` plus accord's runs, tables and ``prune``."""

    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None) -> None:
        super().__init__(conn)
        self.lock = threading.RLock()  # type: ignore[assignment]  # a run's writes nest stock calls
        self._active = threading.local()
        self._locks: FileLocks | ProcessLocks = FileLocks(path) if path else ProcessLocks()

    def setup(self) -> None:
        if self.is_setup:
            return
        with self.lock:
            super().setup()
            cur = self.conn.cursor()
            try:
                SQLITE.setup(cur)
                self.conn.commit()
            finally:
                cur.close()

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        active = getattr(self._active, "cur", None)
        if active is not None:  # inside a run's transaction: the stock SQL joins it
            yield active
            return
        with super().cursor(transaction) as cur:
            yield cur

    def _transaction(self, handle: RunHandle | None, body: Callable[[Any], T]) -> T:
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                self._active.cur = cur
                result = body(cur)
                self.conn.commit()
                return result
            except BaseException:
                self.conn.rollback()
                raise
            finally:
                self._active.cur = None
                cur.close()

    def _read(self, body: Callable[[Any], T]) -> T:
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                return body(cur)
            finally:
                cur.close()

    def _claim_held(self, spec: RunSpec, rule: ClaimRule) -> Claim:
        return self._transaction(
            None, lambda cur: claim_in_transaction(SQLITE, cur, spec, rule, self.clock()))

    def _prune_stored(self, thread_ids: list[str], strategy: str) -> None:
        if strategy == "delete":
            self._statements(_delete_threads(thread_ids))
            if isinstance(self._locks, FileLocks):
                self._locks.forget(thread_ids)
            return
        refuse_delta(self._statements(_delta_threads(thread_ids, self.serde)))
        for thread_id in thread_ids:
            self._statements(_keep_latest(thread_id, self.serde))

    def _statements(self, statements: Generator) -> Any:
        return self._transaction(None, lambda cur: _run(cur, statements))
