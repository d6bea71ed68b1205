"""Thread locks: while a run holds its thread, another run of it waits or gets ``ThreadBusy``.

The lock saves wasted work; the fence (the thread's ``epoch``, checked in every write) is what
keeps a second writer from forking a thread. Each backend uses what dies with the process:

- PostgreSQL: session advisory locks, all held on one lock session per saver; a killed process
  or an ended session releases them (a run then learns at its next write whether another
  run took the thread);
- SQLite: a file lock per thread in ``<db>.locks/`` next to the database file;
- memory: a lock per thread inside this process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from filelock import FileLock, Timeout

from accord.checkpoints.errors import ThreadBusy

POLL_INTERVAL = 0.05
"""Seconds between two attempts to take a busy lock."""

T = TypeVar("T")


def advisory_key(thread_id: str, schema: str = "public") -> int:
    """A signed 64-bit advisory-lock key for a thread id, the same in every process.

    Advisory locks are database-wide while accord's tables live in a schema: two deployments on
    one database in different schemas (``search_path``) each get keys of their own, so a thread
    id the other one uses never makes a thread busy here."""
    scope = "" if schema == "public" else f"{schema}:"
    digest = hashlib.sha256(f"accord.thread:{scope}{thread_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def poll(try_once: Callable[[], T | None], thread_id: str, wait: float) -> T:
    """Call ``try_once`` until it returns something, for at most ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        got = try_once()
        if got is not None:
            return got
        if time.monotonic() >= deadline:
            raise ThreadBusy(thread_id, waited=wait)
        time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


class ProcessLocks:
    """Per-thread locks local to this process (``memory://``)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: set[str] = set()

    def acquire(self, thread_id: str, wait: float) -> str:
        def once() -> str | None:
            with self._guard:
                if thread_id in self._held:
                    return None
                self._held.add(thread_id)
                return thread_id

        return poll(once, thread_id, wait)

    def release(self, token: str) -> None:
        with self._guard:
            self._held.discard(token)


class FileLocks:
    """Per-thread file locks next to a SQLite database."""

    def __init__(self, db_path: Path) -> None:
        self.folder = db_path.with_name(db_path.name + ".locks")

    def path(self, thread_id: str) -> Path:
        return self.folder / f"{hashlib.sha256(thread_id.encode()).hexdigest()}.lock"

    def acquire(self, thread_id: str, wait: float) -> FileLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path(thread_id), thread_local=False, is_singleton=False)

        def once() -> FileLock | None:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                return None
            return lock

        return poll(once, thread_id, wait)

    def release(self, token: FileLock) -> None:
        token.release()

    def forget(self, thread_ids: list[str]) -> None:
        """Remove the lock files of deleted threads (a held one stays)."""
        for thread_id in thread_ids:
            path = self.path(thread_id)
            lock = FileLock(path, thread_local=False, is_singleton=False)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                path.unlink(missing_ok=True)
            finally:
                lock.release()


class LockSession:
    """One PostgreSQL session that holds this process's thread locks (advisory locks).

    Claims run on it (the lock and the claim are one statement); a run's end releases its key.
    If the server ends the session, the next use reconnects and takes the live runs' keys
    again; a key another process took meanwhile marks that run fenced.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._held: dict[int, Any] = {}
        """Advisory key -> the run handle holding it."""

    def run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """Run ``fn`` on the lock session (reconnecting once if the server ended it)."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._session()
                try:
                    return fn(conn)
                except psycopg.OperationalError:
                    if attempt == 2 or not (conn.closed or conn.broken):
                        raise
                    self._conn = None
            raise AssertionError("unreachable")

    def _session(self) -> psycopg.Connection:
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        lost = self._conn is not None
        self._conn = self._connect()
        if lost:  # the locks died with the old session: take them again or lose the thread
            for key, handle in list(self._held.items()):
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
                if not row["ok"]:
                    handle.fenced = True
                    del self._held[key]
        return self._conn

    def hold(self, key: int, handle: Any) -> None:
        with self._lock:
            self._held[key] = handle

    def release(self, key: int) -> None:
        def unlock(conn: psycopg.Connection) -> None:
            self._held.pop(key, None)
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

        try:
            self.run(unlock)
        except psycopg.OperationalError:
            pass  # a session that is gone holds no lock

    def forget(self, handle: Any) -> None:
        """Stop tracking a run whose key was released inside its last transaction."""
        with self._lock:
            for key, held in list(self._held.items()):
                if held is handle:
                    del self._held[key]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
