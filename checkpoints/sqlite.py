"""SQLite savers with `prune`, which the stock langgraph-checkpoint-sqlite savers lack.

Each thread is pruned in one `BEGIN IMMEDIATE` transaction, so a concurrent writer either
commits before the prune reads the thread or waits for it to finish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator, Sequence
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from accord.checkpoints.keep_latest import (
    TASKS_CHANNEL,
    CheckpointRow,
    check_strategy,
    plan_keep_latest,
    refuse_delta,
    uses_delta,
)

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


async def _arun(conn: Any, statements: Generator) -> Any:
    try:
        sql, params, fetch = next(statements)
        while True:
            async with conn.execute(sql, params) as cur:
                rows = list(await cur.fetchall()) if fetch else []
            sql, params, fetch = statements.send(rows)
    except StopIteration as stop:
        return stop.value


class PruningSqliteSaver(SqliteSaver):
    """The stock `SqliteSaver` plus `prune` (`keep_latest` and `delete`)."""

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the threads' checkpoints; see `accord.checkpoints.keep_latest` for what is kept."""
        ids = check_strategy(thread_ids, strategy)
        if not ids:
            return
        if strategy == "delete":
            self._transaction(_delete_threads(ids))
            return
        refuse_delta(self._transaction(_delta_threads(ids, self.serde)))
        for thread_id in ids:
            self._transaction(_keep_latest(thread_id, self.serde))

    def _transaction(self, statements: Generator) -> Any:
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                result = _run(cur, statements)
                self.conn.commit()
                return result
            except BaseException:
                self.conn.rollback()
                raise
            finally:
                cur.close()


class PruningAsyncSqliteSaver(AsyncSqliteSaver):
    """The stock `AsyncSqliteSaver` plus `aprune` / `prune` (`keep_latest` and `delete`)."""

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the threads' checkpoints; see `accord.checkpoints.keep_latest` for what is kept."""
        ids = check_strategy(thread_ids, strategy)
        if not ids:
            return
        if strategy == "delete":
            await self._atransaction(_delete_threads(ids))
            return
        refuse_delta(await self._atransaction(_delta_threads(ids, self.serde)))
        for thread_id in ids:
            await self._atransaction(_keep_latest(thread_id, self.serde))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Sync `prune` from another thread than the saver's event loop, like the stock methods."""
        try:
            if asyncio.get_running_loop() is self.loop:
                raise asyncio.InvalidStateError(
                    "Synchronous calls to AsyncSqliteSaver are only allowed from a different "
                    "thread. From the main thread, use `await checkpointer.aprune(...)`."
                )
        except RuntimeError:
            pass
        asyncio.run_coroutine_threadsafe(
            self.aprune(thread_ids, strategy=strategy), self.loop
        ).result()

    async def _atransaction(self, statements: Generator) -> Any:
        await self.setup()
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = await _arun(self.conn, statements)
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()
            return result
