"""Savers for the contenders, opened the standard way, and clocks on their calls.

- accord: ``accord.checkpoints.open_saver(url)`` / ``open_async_saver(url)`` (one saver type
  serving both; the async form opens it off the event loop);
- bare LangGraph: the stock savers as their documentation opens them: ``SqliteSaver`` /
  ``AsyncSqliteSaver`` on a ``sqlite3`` / ``aiosqlite`` connection (``from_conn_string``),
  ``PostgresSaver`` / ``AsyncPostgresSaver`` over a psycopg pool with ``autocommit=True,
  row_factory=dict_row, prepare_threshold=None``; ``setup()`` once.

``SaverClock`` wraps a saver instance's entry points to sum the wall time spent inside them
and count the calls, so a request's time splits into "inside saver calls" and "elsewhere"
(the graph's nodes, LangGraph's loop and, for accord, its engine).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from accord.checkpoints import open_async_saver, open_saver

PG_KWARGS: dict[str, Any] = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": None}
"""The connection settings LangGraph's Postgres savers require (their documentation's)."""

POOL_SIZE = 20
"""``max_size`` of the stock savers' pools (accord's ``open_saver`` default is 20 as well)."""


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


@contextlib.contextmanager
def stock_saver(url: str | None) -> Iterator[Any]:
    """LangGraph's own sync saver for ``url`` (None: no saver)."""
    if url is None:
        yield None
    elif url.startswith("sqlite:"):
        with SqliteSaver.from_conn_string(sqlite_path(url)) as saver:
            saver.setup()
            yield saver
    else:
        with ConnectionPool(url, max_size=POOL_SIZE, kwargs=PG_KWARGS) as pool:
            saver = PostgresSaver(pool)
            saver.setup()
            yield saver


@contextlib.asynccontextmanager
async def astock_saver(url: str | None) -> AsyncIterator[Any]:
    """LangGraph's own async saver for ``url`` (None: no saver)."""
    if url is None:
        yield None
    elif url.startswith("sqlite:"):
        async with AsyncSqliteSaver.from_conn_string(sqlite_path(url)) as saver:
            await saver.setup()
            yield saver
    else:
        async with AsyncConnectionPool(url, max_size=POOL_SIZE, kwargs=PG_KWARGS) as pool:
            saver = AsyncPostgresSaver(pool)
            await saver.setup()
            yield saver


@contextlib.contextmanager
def accord_saver(url: str | None) -> Iterator[Any]:
    if url is None:
        yield None
    else:
        with open_saver(url) as saver:
            yield saver


@contextlib.asynccontextmanager
async def aaccord_saver(url: str | None) -> AsyncIterator[Any]:
    if url is None:
        yield None
    else:
        async with open_async_saver(url) as saver:
            yield saver


SYNC_CALLS = ("get_tuple", "put", "put_writes", "get_delta_channel_history", "list")
ASYNC_CALLS = ("aget_tuple", "aput", "aput_writes", "aget_delta_channel_history",
               "abegin_run", "aend_run", "aledger_recall", "aledger_record")
"""accord's engine always drives the saver's async methods (its ``invoke`` runs the async
engine on a background loop), so for accord only these are clocked; accord's ``begin_run`` /
``end_run`` (claim the thread, write the last step and the status) and ledger calls count as
saver calls too."""


class SaverClock:
    """Summed wall time and call counts of a saver instance's entry points."""

    def __init__(self, saver: Any, names: tuple[str, ...]) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.busy = 0.0
        """Wall time with at least one call in flight (overlapping calls count once)."""
        self._in_flight = 0
        self._busy_since = 0.0
        self._lock = threading.Lock()
        if saver is None:
            return
        for name in names:
            method = getattr(saver, name, None)
            if method is not None:
                setattr(saver, name, self._wrap(name, method))

    def _enter(self) -> float:
        now = time.perf_counter()
        with self._lock:
            if self._in_flight == 0:
                self._busy_since = now
            self._in_flight += 1
        return now

    def _note(self, name: str, started: float) -> None:
        now = time.perf_counter()
        with self._lock:
            self.seconds[name] += now - started
            self.calls[name] += 1
            self._in_flight -= 1
            if self._in_flight == 0:
                self.busy += now - self._busy_since

    def _wrap(self, name: str, method: Any) -> Any:
        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = self._enter()
                try:
                    return await method(*args, **kwargs)
                finally:
                    self._note(name, started)
            return timed_async
        if inspect.isgeneratorfunction(method) or inspect.isasyncgenfunction(method):
            return method

        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self._enter()
            try:
                return method(*args, **kwargs)
            finally:
                self._note(name, started)
        return timed

    def take(self) -> tuple[float, Counter[str]]:
        """Wall time with a saver call in flight, and the calls, since the last ``take``."""
        with self._lock:
            busy, calls = self.busy, Counter(self.calls)
            self.busy = 0.0
            self.seconds.clear()
            self.calls.clear()
        return busy, calls


def sync_clock(saver: Any, accord: bool) -> SaverClock:
    return SaverClock(saver, ASYNC_CALLS if accord else SYNC_CALLS)


def async_clock(saver: Any) -> SaverClock:
    return SaverClock(saver, ASYNC_CALLS)


