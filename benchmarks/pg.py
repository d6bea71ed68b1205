"""PostgreSQL instruments: commit counters, CPU of the server's processes, pool checkouts, pgbench.

**Counting commits.** ``pg_stat_database.xact_commit`` of a scratch database counts every
transaction committed in it, read-only ones included (each statement a connection in
autocommit mode runs outside a transaction block is one; a psycopg pipeline up to its sync is
one; ``executemany`` runs as a pipeline). PostgreSQL 15 keeps these counters in shared memory,
but a backend adds its own pending counts there only when it goes idle at least 1 s after its
previous flush, after ``pg_stat_force_next_flush()`` at its next transaction end, or when it
exits (the exit flush runs before the backend leaves ``pg_stat_activity``). So a measurement
window opens its savers, runs its requests, closes the savers (their pools, accord's lock
session) and then waits until no backend is connected to the scratch database before reading;
every reading is made from a connection to *another* database (the admin one), after
``pg_stat_clear_snapshot()``, so the reader's own transactions never count. A new connection
commits one transaction while it starts (measured: connect then close adds 1), so the commits
of a window's requests are ``Δxact_commit − Δsessions``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from accord.checkpoints.locks import LockSession

TICKS = os.sysconf("SC_CLK_TCK")


def dbname(url: str) -> str:
    return conninfo_to_dict(url)["dbname"]


@dataclass(frozen=True)
class DbCounters:
    """One reading of ``pg_stat_database`` for a database."""

    xact_commit: int
    xact_rollback: int
    sessions: int
    tup_inserted: int
    tup_updated: int
    tup_deleted: int

    def __sub__(self, other: DbCounters) -> DbCounters:
        return DbCounters(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    @property
    def commits(self) -> int:
        """Commits of the work, without the one each new connection's start commits."""
        return self.xact_commit - self.sessions

    @property
    def rows_written(self) -> int:
        return self.tup_inserted + self.tup_updated + self.tup_deleted


def read_counters(admin_url: str, url: str, wait: float = 30.0) -> DbCounters:
    """Current counters of ``url``'s database, once none of its backends is left."""
    name = dbname(url)
    deadline = time.monotonic() + wait
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while True:
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                (name,)).fetchone()[0]
            if busy == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{busy} backend(s) still connected to {name}")
            time.sleep(0.02)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, sessions, tup_inserted, tup_updated, tup_deleted"
            " FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    return DbCounters(*(int(v) for v in row))


# CPU of PostgreSQL's processes ------------------------------------------------------------------

def _ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks (None when it is gone)."""
    return _ticks_of(Path(f"/proc/{pid}/stat"))


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine_busy() -> int:
    """Clock ticks all CPUs spent not idle (``/proc/stat``: everything but idle and iowait)."""
    fields_ = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields_[:8]) - fields_[3] - fields_[4]


class ServerCpu:
    """CPU seconds used by PostgreSQL between ``start`` and ``stop``, read from ``/proc``.

    *backends*: the backends connected to the measured databases (pids from
    ``pg_stat_activity``, read at the start and at the end; a backend that connected in between
    counts whole, its CPU before the start being 0). *server*: every ``postgres`` process on the
    machine (background writer, WAL writer, checkpointer, and other tenants' backends too).
    *machine*: every CPU's busy time (``/proc/stat``).
    """

    def __init__(self, admin_url: str, urls: list[str]) -> None:
        self.admin_url = admin_url
        self.names = [dbname(u) for u in urls]
        self.available = Path("/proc/self/stat").exists()

    def _backends(self) -> list[int]:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            return [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", (self.names,))]

    def _sample(self) -> tuple[dict[int, int], dict[int, int], int]:
        backends = {p: t for p in self._backends() if (t := _ticks(p)) is not None}
        server = {p: t for p in _postgres_pids() if (t := _ticks(p)) is not None}
        return backends, server, _machine_busy()

    def start(self) -> None:
        self._start = self._sample() if self.available else ({}, {}, 0)

    def stop(self) -> tuple[float, float, float]:
        """CPU seconds since ``start``: the backends', the whole server's, the machine's."""
        if not self.available:
            return float("nan"), float("nan"), float("nan")
        end = self._sample()
        out = []
        for before, after in zip(self._start[:2], end[:2], strict=True):
            out.append(sum(t - before.get(p, 0) for p, t in after.items()) / TICKS)
        return out[0], out[1], (end[2] - self._start[2]) / TICKS


# pool checkouts and accord's lock session ----------------------------------------------------------

class Checkouts:
    """Counts pool checkouts (``getconn``; ``connection()`` goes through it) of psycopg's sync
    and async pools, and calls of accord's lock session with the time it was busy."""

    def __init__(self) -> None:
        self.pool = 0
        self.lock_calls = 0
        self.lock_busy = 0.0
        """Wall time with at least one lock-session call in flight (the session is in use)."""
        self.lock_waiting = 0.0
        """Wall time summed over calls (waiting for the session included)."""
        self._in_flight = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def take(self) -> tuple[int, int, float, float]:
        with self._lock:
            out = (self.pool, self.lock_calls, self.lock_busy, self.lock_waiting)
            self.pool, self.lock_calls, self.lock_busy, self.lock_waiting = 0, 0, 0.0, 0.0
        return out

    @contextlib.contextmanager
    def installed(self) -> Iterator[Checkouts]:
        """Wrap the classes' methods for the duration (the benchmark process only)."""
        originals = {(ConnectionPool, "getconn"): ConnectionPool.getconn,
                     (AsyncConnectionPool, "getconn"): AsyncConnectionPool.getconn,
                     (LockSession, "run"): LockSession.run}
        counter = self

        def getconn(pool: Any, *args: Any, **kwargs: Any) -> Any:
            with counter._lock:
                counter.pool += 1
            return originals[(ConnectionPool, "getconn")](pool, *args, **kwargs)

        async def agetconn(pool: Any, *args: Any, **kwargs: Any) -> Any:
            with counter._lock:
                counter.pool += 1
            return await originals[(AsyncConnectionPool, "getconn")](pool, *args, **kwargs)

        def run(session: Any, fn: Any) -> Any:
            started = time.perf_counter()
            with counter._lock:
                if counter._in_flight == 0:
                    counter._since = started
                counter._in_flight += 1
            try:
                return originals[(LockSession, "run")](session, fn)
            finally:
                now = time.perf_counter()
                with counter._lock:
                    counter.lock_calls += 1
                    counter.lock_waiting += now - started
                    counter._in_flight -= 1
                    if counter._in_flight == 0:
                        counter.lock_busy += now - counter._since

        ConnectionPool.getconn = getconn  # type: ignore[method-assign]
        AsyncConnectionPool.getconn = agetconn  # type: ignore[method-assign]
        LockSession.run = run  # type: ignore[method-assign]
        try:
            yield self
        finally:
            for (cls, name), method in originals.items():
                setattr(cls, name, method)


# pgbench ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pgbench:
    tps: float | None
    """Transactions per second of ``-N`` with ``clients`` clients."""
    clients: int
    latency_ms: float | None
    """Average latency of one ``-N`` transaction with a single client (one commit each)."""
    single_tps: float | None
    note: str


def _binary() -> str | None:
    return shutil.which("pgbench") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)


def pgbench(url: str, *, scale: int, clients: int, seconds: int) -> Pgbench:
    """``pgbench -i -s scale`` then ``-N`` (no branch/teller updates: one commit per
    transaction) with ``clients`` clients and with one, ``seconds`` each."""
    binary = _binary()
    if binary is None:
        return Pgbench(None, clients, None, None, "pgbench not installed")
    init = subprocess.run([binary, "-i", "-s", str(scale), "-q", url], capture_output=True,
                          text=True, check=False)
    if init.returncode:
        return Pgbench(None, clients, None, None,
                       f"pgbench -i failed: {init.stderr.strip().splitlines()[-1:]}")

    def bench(c: int) -> tuple[float | None, float | None]:
        out = subprocess.run([binary, "-N", "-c", str(c), "-j", str(min(c, 2)), "-T",
                              str(seconds), url], capture_output=True, text=True, check=False)
        tps = re.search(r"tps = ([\d.]+)", out.stdout)
        lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
        return (float(tps.group(1)) if tps else None, float(lat.group(1)) if lat else None)

    tps, _ = bench(clients)
    single_tps, latency = bench(1)
    return Pgbench(tps, clients, latency, single_tps,
                   f"pgbench -i -s {scale}; -N -c {clients} -j 2 -T {seconds}; -N -c 1 -T {seconds}")


# where the commits come from (client side) --------------------------------------------------------

class TransactionLog:
    """Counts, from the client, the transactions a process makes PostgreSQL commit, by who asked.

    In autocommit mode a statement run outside a transaction block and outside a pipeline is
    one transaction; an outermost ``transaction()`` block is one; an outermost ``pipeline()``
    (or an ``executemany``, which runs as one) is one up to its sync. Each is labelled with the
    outermost saver method on the Python stack (accord's ``begin_run``, ``put``, ``end_run``,
    …; the stock saver's ``aput``, ``aput_writes``, …). Walking the stack costs CPU: this runs
    in a pass of its own, never in a timed one.
    """

    SAVER_CODE = ("/checkpoints/", "/langgraph/checkpoint/")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _label(self, kind: str) -> None:
        frame = sys._getframe(2)
        outermost = None
        while frame is not None:
            path = frame.f_code.co_filename
            if any(part in path for part in self.SAVER_CODE) and "/psycopg" not in path:
                outermost = frame.f_code.co_name
            frame = frame.f_back
        label = f"{outermost or '?'} ({kind})"
        with self._lock:
            self.counts[label] = self.counts.get(label, 0) + 1

    def take(self) -> dict[str, int]:
        with self._lock:
            out, self.counts = self.counts, {}
        return out

    @contextlib.contextmanager
    def installed(self) -> Iterator[TransactionLog]:
        log = self
        patched: list[tuple[Any, str, Any]] = []

        def idle(conn: Any) -> bool:
            return conn._pipeline is None and conn.info.transaction_status == TransactionStatus.IDLE

        def patch(cls: Any, name: str, make: Any) -> None:
            original = getattr(cls, name)
            patched.append((cls, name, original))
            setattr(cls, name, make(original))

        def statement(original: Any) -> Any:
            def execute(cur: Any, *args: Any, **kwargs: Any) -> Any:
                if idle(cur._conn):
                    log._label("statement")
                return original(cur, *args, **kwargs)
            return execute

        def astatement(original: Any) -> Any:
            async def execute(cur: Any, *args: Any, **kwargs: Any) -> Any:
                if idle(cur._conn):
                    log._label("statement")
                return await original(cur, *args, **kwargs)
            return execute

        def block(kind: str) -> Any:
            def make(original: Any) -> Any:
                def enter(conn: Any, *args: Any, **kwargs: Any) -> Any:
                    if idle(conn):
                        log._label(kind)
                    return original(conn, *args, **kwargs)
                return enter
            return make

        for cls in (psycopg.Cursor,):
            patch(cls, "execute", statement)
            patch(cls, "executemany", statement)
        for cls in (psycopg.AsyncCursor,):
            patch(cls, "execute", astatement)
            patch(cls, "executemany", astatement)
        for cls in (psycopg.Connection, psycopg.AsyncConnection):
            patch(cls, "transaction", block("transaction"))
            patch(cls, "pipeline", block("pipeline"))
        try:
            yield self
        finally:
            for cls, name, original in reversed(patched):
                setattr(cls, name, original)


# CPU of this process, by thread ------------------------------------------------------------------

def _thread_group(name: str) -> str:
    """A thread's role from its Python name (pool threads are numbered)."""
    base = re.sub(r"[_-]?\d+(_\d+)?$", "", name)
    return {"MainThread": "event loop (main thread)", "accord-saver": "accord's saver threads",
            "asyncio": "asyncio default executor (tools, sync work)",
            "accord-portal": "accord's portal loop"}.get(base, base or name)


class ThreadCpu:
    """CPU seconds of this process's threads between ``start`` and ``stop``, by role
    (``/proc/self/task/<tid>/stat``, matched to Python threads by ``native_id``)."""

    def _sample(self) -> dict[int, int]:
        out = {}
        for entry in Path("/proc/self/task").iterdir():
            ticks = _ticks_of(entry / "stat")
            if ticks is not None:
                out[int(entry.name)] = ticks
        return out

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        names = {t.native_id: t.name for t in threading.enumerate()}
        out: dict[str, float] = {}
        for tid, ticks in end.items():
            group = _thread_group(names.get(tid, "other"))
            out[group] = out.get(group, 0.0) + (ticks - self._start.get(tid, 0)) / TICKS
        return out


def _ticks_of(path: Path) -> int | None:
    try:
        stat = path.read_text()
    except OSError:
        return None
    after = stat.rsplit(")", 1)[1].split()  # fields from 3 on; the name may hold spaces
    return int(after[11]) + int(after[12])
