"""One writer per thread: `thread_lock(url, thread_id)` excludes other holders, across processes.

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a dedicated connection.
- SQLite: a file lock in `<db>.locks/` next to the database file.
- memory: a lock local to this process (memory savers are local to it too).

Each polls until `wait` seconds pass, then raises `ThreadBusy`; the lock is always released on exit.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

import psycopg
from filelock import FileLock, Timeout

from accord.checkpoints.connections import CONNECT_TIMEOUT, aconnect_postgres, connect_postgres
from accord.checkpoints.errors import ThreadBusy
from accord.checkpoints.urls import Backend, DatabaseURL, parse_url, resolve_url

POLL_INTERVAL = 0.05
"""Seconds between two attempts to take a busy lock."""

_process_locks_guard = threading.Lock()
_process_locks: dict[str, threading.Lock] = {}


def advisory_key(thread_id: str) -> int:
    """A signed 64-bit advisory-lock key for a thread id, the same in every process."""
    digest = hashlib.sha256(f"accord.thread:{thread_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file(db: DatabaseURL, thread_id: str) -> Path:
    """The lock file of a thread in a SQLite database: `<db>.locks/<sha256>.lock`."""
    assert db.path is not None
    name = hashlib.sha256(thread_id.encode()).hexdigest()
    return db.path.with_name(db.path.name + ".locks") / f"{name}.lock"


def _process_lock(thread_id: str) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(thread_id, threading.Lock())


def _poll(try_once: Callable[[], bool], thread_id: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while not try_once():
        if time.monotonic() >= deadline:
            raise ThreadBusy(thread_id, waited=wait)
        time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


async def _apoll(try_once: Callable[[], object], thread_id: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        got = try_once()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if time.monotonic() >= deadline:
            raise ThreadBusy(thread_id, waited=wait)
        await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


@contextmanager
def thread_lock(
    url: str | None, thread_id: str, *, wait: float = 0.0, timeout: float = CONNECT_TIMEOUT
) -> Iterator[None]:
    """Hold the thread's writer lock for the block; raise `ThreadBusy` if not free within `wait` s."""
    db = parse_url(resolve_url(url))
    thread_id = str(thread_id)
    if db.backend is Backend.POSTGRES:
        key = advisory_key(thread_id)
        with connect_postgres(db, timeout) as conn:

            def try_once() -> bool:
                row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
                return bool(row and row["ok"])

            _poll(try_once, thread_id, wait)
            try:
                yield
            finally:
                # A session the server has ended holds no lock any more: nothing to release.
                with suppress(psycopg.OperationalError):
                    if not conn.closed:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    elif db.backend is Backend.SQLITE:
        path = lock_file(db, thread_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, thread_local=False, is_singleton=False)
        _poll(lambda: _try_file_lock(lock), thread_id, wait)
        try:
            yield
        finally:
            lock.release()
    else:
        plock = _process_lock(thread_id)
        _poll(lambda: plock.acquire(blocking=False), thread_id, wait)
        try:
            yield
        finally:
            plock.release()


@asynccontextmanager
async def athread_lock(
    url: str | None, thread_id: str, *, wait: float = 0.0, timeout: float = CONNECT_TIMEOUT
) -> AsyncIterator[None]:
    """Async twin of `thread_lock`."""
    db = parse_url(resolve_url(url))
    thread_id = str(thread_id)
    if db.backend is Backend.POSTGRES:
        key = advisory_key(thread_id)
        conn = await aconnect_postgres(db, timeout)
        async with conn:

            async def try_once() -> bool:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,))
                row = await cur.fetchone()
                return bool(row and row["ok"])

            await _apoll(try_once, thread_id, wait)
            try:
                yield
            finally:
                # A session the server has ended holds no lock any more: nothing to release.
                with suppress(psycopg.OperationalError):
                    if not conn.closed:
                        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    elif db.backend is Backend.SQLITE:
        path = lock_file(db, thread_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, thread_local=False, is_singleton=False)
        await _apoll(lambda: _try_file_lock(lock), thread_id, wait)
        try:
            yield
        finally:
            lock.release()
    else:
        plock = _process_lock(thread_id)
        await _apoll(lambda: plock.acquire(blocking=False), thread_id, wait)
        try:
            yield
        finally:
            plock.release()


def _try_file_lock(lock: FileLock) -> bool:
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    return True
