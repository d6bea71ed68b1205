"""Breakers in a table beside accord's (``accord_breakers``), on SQLite or PostgreSQL.

Every change is one transaction of accord's saver: SQLite's ``BEGIN IMMEDIATE`` serialises
writers; on PostgreSQL the row is inserted if missing and locked ``FOR UPDATE``. Two processes
on one database therefore see one breaker, and only one of them gets the half-open probe.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

from accord.errors import AccordError
from accord.resilience.breaker import Breaker, BreakerState, BreakerStore, Clock, MemoryBreakers

_DDL = {
    "sqlite": """CREATE TABLE IF NOT EXISTS accord_breakers (
        name TEXT PRIMARY KEY, state TEXT NOT NULL, failures INTEGER NOT NULL,
        window_start REAL, opened_at REAL, updated_at REAL)""",
    "postgres": """CREATE TABLE IF NOT EXISTS accord_breakers (
        name TEXT PRIMARY KEY, state TEXT NOT NULL, failures INTEGER NOT NULL,
        window_start DOUBLE PRECISION, opened_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION)""",
}
_COLUMNS = ("name", "state", "failures", "window_start", "opened_at", "updated_at")


class BreakerTableCorrupt(AccordError):
    """A row of ``accord_breakers`` holds a value accord cannot read (edited by hand?)."""


def _breaker(row: Any) -> Breaker:
    values = [row[c] for c in _COLUMNS] if isinstance(row, dict) else list(row)
    name, state, failures, window_start, opened_at, updated_at = values
    try:
        return Breaker(name, BreakerState(state), int(failures), window_start, opened_at,
                       updated_at)
    except (ValueError, TypeError) as exc:
        raise BreakerTableCorrupt(f"accord_breakers row {name!r}: {exc}") from None


class SqlBreakers(BreakerStore):
    """Breakers in accord's database, through its saver's transactions."""

    def __init__(self, saver: Any, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self.saver = saver
        self.dialect = saver.dialect.name
        self._p = "%s" if self.dialect == "postgres" else "?"
        self._ready = False

    def _setup(self, cur: Any) -> None:
        if not self._ready:
            cur.execute(_DDL[self.dialect])

    def _in_transaction(self, body: Callable[[Any], Any]) -> Any:
        result = self.saver._transaction(None, body)
        self._ready = True  # known to exist once committed: a transaction cut short rolls back
        return result

    def change(self, name: str, step: Callable[[Breaker], tuple[Any, Breaker]]) -> Any:
        p = self._p
        cols = ", ".join(_COLUMNS)

        def body(cur: Any) -> Any:
            self._setup(cur)
            cur.execute(f"INSERT INTO accord_breakers ({cols}) VALUES ({p}, {p}, 0, NULL, NULL,"
                        f" NULL) ON CONFLICT (name) DO NOTHING", (name, BreakerState.CLOSED.value))
            lock = " FOR UPDATE" if self.dialect == "postgres" else ""
            cur.execute(f"SELECT {cols} FROM accord_breakers WHERE name = {p}{lock}", (name,))
            before = _breaker(cur.fetchone())
            answer, after = step(before)
            if after != before:
                cur.execute(
                    f"UPDATE accord_breakers SET state = {p}, failures = {p}, window_start = {p},"
                    f" opened_at = {p}, updated_at = {p} WHERE name = {p}",
                    (after.state.value, after.failures, after.window_start, after.opened_at,
                     after.updated_at, name))
            return answer

        return self._in_transaction(body)

    def all(self) -> list[Breaker]:
        def body(cur: Any) -> list[Breaker]:
            self._setup(cur)
            cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM accord_breakers ORDER BY name")
            return [_breaker(row) for row in cur.fetchall()]

        if self._ready:
            return self.saver._read(body)
        return self._in_transaction(body)


_STORES: weakref.WeakKeyDictionary[Any, BreakerStore] = weakref.WeakKeyDictionary()
"""The breaker store of each open saver (one per saver, so its clock and its cache hold)."""


def breakers_for(saver: Any, *, clock: Clock | None = None) -> BreakerStore:
    """The breakers of ``saver``'s database (in memory for ``memory://``); ``clock`` replaces
    the store's clock (tests)."""
    store = _STORES.get(saver)
    if store is None:
        dialect = getattr(getattr(saver, "dialect", None), "name", None)
        store = SqlBreakers(saver) if dialect in _DDL else MemoryBreakers()
        _STORES[saver] = store
    if clock is not None:
        store.clock = clock
    return store


__all__ = ["BreakerTableCorrupt", "SqlBreakers", "breakers_for"]
