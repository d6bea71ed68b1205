"""Long-term memory shared across threads: a LangGraph `BaseStore` opened from a URL.

- `postgresql://…` -> `PostgresStore` over a pool (expired items hidden even before a sweep);
- `sqlite:///…` -> `SqliteStore` in the same file as the checkpoints;
- `memory://` -> `InMemoryStore` (no TTL support in langgraph: asking for one raises).

With `ttl_minutes`, items expire that long after their last write or read, and a background
sweeper deletes expired items while the store is open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock
from langgraph.store.base import BaseStore, TTLConfig
from langgraph.store.memory import InMemoryStore
from langgraph.store.postgres import PostgresStore
from langgraph.store.sqlite import SqliteStore

from accord.checkpoints.connections import (
    CONNECT_TIMEOUT,
    connect_sqlite,
    postgres_pool,
    run_setup_once,
)
from accord.checkpoints.errors import UnsupportedOption
from accord.checkpoints.urls import Backend, parse_url, resolve_url

DEFAULT_SWEEP_MINUTES = 5
"""How often the sweeper deletes expired items, in minutes."""


@contextmanager
def open_store(
    url: str | None = None,
    *,
    ttl_minutes: float | None = None,
    sweep_interval_minutes: int = DEFAULT_SWEEP_MINUTES,
    refresh_on_read: bool = True,
    timeout: float = CONNECT_TIMEOUT,
) -> Iterator[BaseStore]:
    """Yield the store at `url` (see `resolve_url`); stop its sweeper and close it on exit."""
    db = parse_url(resolve_url(url))
    ttl: TTLConfig | None = None
    if ttl_minutes is not None:
        ttl = TTLConfig(
            default_ttl=ttl_minutes,
            refresh_on_read=refresh_on_read,
            sweep_interval_minutes=sweep_interval_minutes,
        )
    if db.backend is Backend.MEMORY:
        if ttl is not None:
            raise UnsupportedOption("memory:// stores do not support ttl_minutes (InMemoryStore)")
        yield InMemoryStore()
    elif db.backend is Backend.SQLITE:
        conn = connect_sqlite(db, autocommit=True)
        try:
            store = SqliteStore(conn, ttl=ttl)
            # Its migrations are not safe to run from two processes at once on a new file.
            with FileLock(f"{db.path}.setup.lock"):
                store.setup()
            with _sweeping(store):
                yield store
        finally:
            conn.close()
    else:
        if ttl is not None:
            ttl["omit_expired"] = True
        with postgres_pool(db, timeout=timeout) as pool:
            store = PostgresStore(pool, ttl=ttl)
            run_setup_once("store", db.url, store.setup)
            with _sweeping(store):
                yield store


@contextmanager
def _sweeping(store: SqliteStore | PostgresStore) -> Iterator[None]:
    if not store.ttl_config:
        yield
        return
    store.sweep_ttl()
    store.start_ttl_sweeper()
    try:
        yield
    finally:
        store.stop_ttl_sweeper(timeout=5)
