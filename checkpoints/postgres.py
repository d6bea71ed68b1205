"""accord's PostgreSQL saver: the stock ``PostgresSaver`` with runs (see ``accord_saver.py``).

- One psycopg pool (``autocommit``, ``dict_row``, ``prepare_threshold=None``); a connection
  idle a while is checked before use, one dropped in steady use fails its statement, which is
  retried once on a fresh connection (every write is an idempotent upsert).
- A run's writes go into one transaction together with accord's tables; the stock ``put`` and
  ``put_writes`` SQL joins it.
- Thread locks are session advisory locks held on one lock session per saver (``locks.py``);
  claiming a thread is one statement on it (lock, check, claim, and what the run needs to
  know about the thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from accord.checkpoints.accord_saver import AccordSaver
from accord.checkpoints.journal import Claim, ClaimRule
from accord.checkpoints.journal_pg import POSTGRES
from accord.checkpoints.locks import LockSession, ProcessLocks, advisory_key, poll
from accord.checkpoints.runs import RunHandle, RunSpec

T = TypeVar("T")


def _dropped(conn: psycopg.Connection | None) -> bool:
    return conn is not None and (conn.closed or conn.broken)


def _pipelined(conn: psycopg.Connection, wanted: bool) -> AbstractContextManager[Any]:
    """A run's writes go through a pipeline: its statements travel together and their results
    are read at commit, so a step costs a few round trips instead of one per statement. Only
    the fence (and the run's end) is read at once: nothing else is sent before it answered."""
    if wanted and psycopg.Pipeline.is_supported():
        return conn.pipeline()
    return nullcontext()


class AccordPostgresSaver(AccordSaver, PostgresSaver):
    """The stock ``PostgresSaver`` plus accord's runs and tables."""

    dialect = POSTGRES

    def __init__(self, pool: ConnectionPool, locks: LockSession) -> None:
        super().__init__(pool)
        self._active = threading.local()
        self._locks = locks
        self._local = ProcessLocks()  # advisory locks are re-entrant within one session
        self._schema: str | None = None

    def setup(self) -> None:
        super().setup()
        with self._cursor() as cur:
            POSTGRES.setup(cur)

    def _lock_key(self, thread_id: str) -> int:
        """The thread's advisory-lock key in the schema accord's tables are in."""
        if self._schema is None:
            self._schema = self._read(
                lambda cur: cur.execute("SELECT current_schema() AS s").fetchone()["s"]) or "public"
        return advisory_key(thread_id, self._schema)

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; one the server dropped marks the call for a retry."""
        with self.conn.connection() as conn:  # type: ignore[union-attr]
            try:
                yield conn
            except psycopg.OperationalError:
                if _dropped(conn):
                    self._active.dropped = True
                raise

    def _retry(self, call: Callable[[], T]) -> T:
        """Run ``call`` again, once, if the server dropped its connection: the pool's idle
        connections are checked first (a restart drops them all), so the retry gets a live one.
        Every read is safe to repeat, every write an idempotent upsert."""
        for attempt in (1, 2):
            self._active.dropped = False
            try:
                return call()
            except psycopg.OperationalError:
                if attempt == 2 or not getattr(self._active, "dropped", False):
                    raise
                self.conn.check()  # type: ignore[union-attr]
        raise AssertionError("unreachable")

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[psycopg.Cursor[DictRow]]:
        active = getattr(self._active, "cur", None)
        if active is not None:  # inside a run's transaction: the stock SQL joins it
            yield active
            return
        with self._pooled() as conn:
            if pipeline and self.supports_pipeline:
                with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    def get_tuple(self, config: Any) -> Any:
        return self._retry(lambda: super(AccordPostgresSaver, self).get_tuple(config))

    def list(self, config: Any, *, filter: Any = None, before: Any = None,
             limit: int | None = None) -> Iterator[Any]:
        yield from self._retry(lambda: list(super(AccordPostgresSaver, self).list(
            config, filter=filter, before=before, limit=limit)))

    def get_delta_channel_history(self, *, config: Any, channels: Sequence[str]) -> Any:
        return self._retry(lambda: super(AccordPostgresSaver, self).get_delta_channel_history(
            config=config, channels=channels))

    def _transaction(self, handle: RunHandle | None, body: Callable[[Any], T]) -> T:
        def attempt() -> T:
            with self._pooled() as conn, _pipelined(conn, handle is not None):
                with conn.transaction(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    self._active.cur = cur
                    try:
                        return body(cur)
                    finally:
                        self._active.cur = None

        return self._retry(attempt)

    def _final_transaction(self, handle: RunHandle, body: Callable[[Any], T]) -> T:
        """The run's last transaction runs on the lock session and releases the thread's lock
        in it: one round trip ends the run."""
        key, _ = handle.backend

        def on_session(conn: psycopg.Connection) -> T:
            with _pipelined(conn, True), conn.transaction(), \
                    conn.cursor(binary=True, row_factory=dict_row) as cur:
                self._active.cur = cur
                try:
                    result = body(cur)
                    cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    handle.backend = (None, handle.backend[1])
                    return result
                finally:
                    self._active.cur = None

        return self._locks.run(on_session)

    def _read_together(self, body: Callable[[], T]) -> T:
        """Several stock reads in one transaction on one pooled connection."""
        def attempt() -> T:
            with self._pooled() as conn:
                with conn.transaction(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    self._active.cur = cur
                    try:
                        return body()
                    finally:
                        self._active.cur = None

        return self._retry(attempt)

    def _read(self, body: Callable[[Any], T]) -> T:
        def attempt() -> T:
            with self._pooled() as conn, conn.cursor(row_factory=dict_row) as cur:
                return body(cur)

        return self._retry(attempt)

    def _claim(self, spec: RunSpec, rule: ClaimRule) -> tuple[Claim, Any]:
        key = self._lock_key(spec.thread_id)
        local = self._local.acquire(spec.thread_id, spec.wait)

        def once() -> Claim | None:
            locked, claim = self._locks.run(
                lambda conn: POSTGRES.claim(conn.cursor(row_factory=dict_row), spec, rule, key,
                                            self.clock()))
            return claim if locked else None

        try:
            claim = poll(once, spec.thread_id, spec.wait)
        except BaseException:
            self._local.release(local)
            raise
        if claim.epoch is None:
            self._locks.release(key)
            self._local.release(local)
        return claim, (key, local)

    def begin_run(self, spec: RunSpec) -> RunHandle:
        handle = super().begin_run(spec)
        self._locks.hold(handle.backend[0], handle)
        return handle

    def _release(self, handle: RunHandle) -> None:
        key, local = handle.backend
        try:
            if key is not None:  # not released yet by the run's last transaction
                self._locks.release(key)
            else:
                self._locks.forget(handle)
        finally:
            self._local.release(local)

    def _prune_stored(self, thread_ids: list[str], strategy: str) -> None:
        PostgresSaver.prune(self, thread_ids, strategy=strategy)

    def _hold(self, thread_id: str, wait: float) -> Any:
        key = self._lock_key(thread_id)
        local = self._local.acquire(thread_id, wait)

        def once() -> bool | None:
            row = self._locks.run(lambda conn: conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone())
            return True if row["ok"] else None

        try:
            poll(once, thread_id, wait)
        except BaseException:
            self._local.release(local)
            raise
        return key, local

    def _unhold(self, token: Any) -> None:
        key, local = token
        try:
            self._locks.release(key)
        finally:
            self._local.release(local)


__all__ = ["AccordPostgresSaver"]
