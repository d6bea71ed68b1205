"""Opening connections: SQLite files and PostgreSQL pools, with unreachable databases as typed errors.

Nothing here connects at import; every function opens what it returns and the caller closes it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from accord.checkpoints.errors import DatabaseUnreachable
from accord.checkpoints.urls import DatabaseURL, parse_url

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a database before raising `DatabaseUnreachable`."""

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another one before `database is locked`."""

PG_KWARGS: dict[str, Any] = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": None}
"""Connection settings the LangGraph Postgres savers and stores require."""

_setup_lock = threading.Lock()
_setup_done: set[tuple[str, str]] = set()


SETUP_LOCK_KEY = int.from_bytes(hashlib.sha256(b"accord.setup").digest()[:8], "big", signed=True)
"""PostgreSQL advisory-lock key that serialises schema set-up across processes."""


SETUP_WAIT = 120.0
"""Seconds a process waits for another one's schema set-up."""
_TRY_LOCK = "SELECT pg_try_advisory_lock(%s) AS ok"


def _try_setup_lock(conn: psycopg.Connection) -> bool:
    # Polling (not a blocking pg_advisory_lock) matters: the set-up runs CREATE INDEX
    # CONCURRENTLY, which waits for every open transaction, including a blocked lock wait.
    row = conn.execute(_TRY_LOCK, (SETUP_LOCK_KEY,)).fetchone()
    return bool(row and row["ok"])


def run_setup_once(kind: str, url: str, setup: Callable[[], None]) -> None:
    """Run `setup` (idempotent DDL on PostgreSQL) once per process for `(kind, url)`.

    Processes that start together on a fresh database would race in `CREATE ... IF NOT EXISTS`
    (`duplicate key value violates unique constraint "pg_type_typname_nsp_index"`), so the DDL
    runs under an advisory lock, one process at a time.
    """
    key = (kind, url)
    with _setup_lock:
        if key in _setup_done:
            return
        with connect_postgres(parse_url(url)) as conn:
            deadline = time.monotonic() + SETUP_WAIT
            while not _try_setup_lock(conn):
                if time.monotonic() > deadline:
                    raise DatabaseUnreachable(parse_url(url).display, "schema set-up lock not free")
                time.sleep(0.05)
            setup()  # closing the connection releases the lock
        _setup_done.add(key)


def connect_sqlite(db: DatabaseURL, *, autocommit: bool = False) -> sqlite3.Connection:
    """A SQLite connection for many threads, in WAL mode with a busy timeout.

    `autocommit=True` (`isolation_level=None`) is for callers that issue their own `BEGIN`.
    """
    assert db.path is not None
    db.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            str(db.path),
            check_same_thread=False,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            **({"isolation_level": None} if autocommit else {}),
        )
    except sqlite3.Error as exc:
        raise DatabaseUnreachable(db.display, str(exc)) from None
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    return conn


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without the repeated `connection failed:` prefix."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    reason = lines[0].removeprefix("connection failed: ")
    return reason.rsplit(" failed: ", 1)[-1].replace("FATAL:  ", "").strip()


def probe_postgres(db: DatabaseURL, timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect once, so a wrong host, port, user or database fails fast with one clear line."""
    try:
        with psycopg.connect(db.url, connect_timeout=max(1, round(timeout))):
            pass
    except psycopg.Error as exc:
        raise DatabaseUnreachable(db.display, _reason(exc)) from None


def connect_postgres(db: DatabaseURL, timeout: float = CONNECT_TIMEOUT) -> psycopg.Connection:
    """One dedicated autocommit connection (for session-level advisory locks)."""
    try:
        return psycopg.connect(db.url, connect_timeout=max(1, round(timeout)), **PG_KWARGS)
    except psycopg.Error as exc:
        raise DatabaseUnreachable(db.display, _reason(exc)) from None


IDLE_CHECK_SECONDS = 2.0
"""A pooled connection idle longer than this is pinged before use; a busier one is not."""

POOL_WAIT = 60.0
"""Seconds a caller waits for a free pooled connection under load."""

_returned: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _note_returned(conn: psycopg.Connection) -> None:
    """Pool ``reset`` callback: remember when the connection was last in use."""
    _returned[conn] = time.monotonic()


def check_if_idle(conn: psycopg.Connection) -> None:
    """Pool ``check`` callback: a round trip only for a connection idle a while.

    A connection the server or a proxy dropped is found here (or, if it was dropped while in
    steady use, by the statement that fails on it: accord's writes are idempotent and retried
    once on a fresh connection).
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection is closed")
    last = _returned.get(conn)
    if last is None or time.monotonic() - last > IDLE_CHECK_SECONDS:
        conn.execute("")


@contextmanager
def postgres_pool(
    db: DatabaseURL, *, timeout: float = CONNECT_TIMEOUT, max_size: int = 20
) -> Iterator[ConnectionPool]:
    """An open pool: connections idle a while are checked before use, dropped ones replaced."""
    probe_postgres(db, timeout)
    pool = ConnectionPool(
        db.url,
        min_size=1,
        max_size=max_size,
        kwargs=PG_KWARGS,
        check=check_if_idle,
        reset=_note_returned,
        open=False,
        timeout=POOL_WAIT,
        name="accord",
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except PoolTimeout as exc:
        pool.close()
        raise DatabaseUnreachable(db.display, _reason(exc)) from None
    try:
        yield pool
    finally:
        pool.close()
