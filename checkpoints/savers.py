"""Open a LangGraph checkpointer from a URL: `memory://`, `sqlite:///path` or `postgresql://…`.

```python
with open_saver("sqlite:///.accord/accord.db") as saver:
    graph = builder.compile(checkpointer=saver)
```

Every saver accord opens supports `prune(thread_ids, strategy=...)`: the Postgres savers ship it;
for SQLite and memory accord subclasses the stock saver to add it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from accord.checkpoints.connections import (
    CONNECT_TIMEOUT,
    SQLITE_BUSY_TIMEOUT_MS,
    apostgres_pool,
    arun_setup_once,
    connect_sqlite,
    postgres_pool,
    run_setup_once,
)
from accord.checkpoints.errors import DatabaseUnreachable
from accord.checkpoints.memory import PruningInMemorySaver
from accord.checkpoints.sqlite import PruningAsyncSqliteSaver, PruningSqliteSaver
from accord.checkpoints.urls import Backend, parse_url, resolve_url


@contextmanager
def open_saver(
    url: str | None = None, *, timeout: float = CONNECT_TIMEOUT
) -> Iterator[BaseCheckpointSaver]:
    """Yield a checkpointer for `url` (see `resolve_url`) and close its connections on exit.

    Raises `UnknownScheme` for an unsupported URL and `DatabaseUnreachable` when the
    database cannot be reached within `timeout` seconds.
    """
    db = parse_url(resolve_url(url))
    if db.backend is Backend.MEMORY:
        yield PruningInMemorySaver()
    elif db.backend is Backend.SQLITE:
        conn = connect_sqlite(db)
        try:
            saver = PruningSqliteSaver(conn)
            saver.setup()
            yield saver
        finally:
            conn.close()
    else:
        with postgres_pool(db, timeout=timeout) as pool:
            saver = PostgresSaver(pool)
            run_setup_once("checkpointer", db.url, saver.setup)
            yield saver


@asynccontextmanager
async def open_async_saver(
    url: str | None = None, *, timeout: float = CONNECT_TIMEOUT
) -> AsyncIterator[BaseCheckpointSaver]:
    """Async twin of `open_saver`, for `graph.ainvoke` / `astream`."""
    # Resolving a sqlite URL touches the file system (cwd, mkdir): not on the event loop.
    db = await asyncio.to_thread(lambda: parse_url(resolve_url(url)))
    if db.backend is Backend.MEMORY:
        yield PruningInMemorySaver()
    elif db.backend is Backend.SQLITE:
        assert db.path is not None
        try:
            conn = await aiosqlite.connect(str(db.path), timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        except Exception as exc:  # noqa: BLE001 - aiosqlite wraps sqlite3 errors variously
            raise DatabaseUnreachable(db.display, str(exc)) from None
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            saver = PruningAsyncSqliteSaver(conn)
            await saver.setup()
            yield saver
        finally:
            await conn.close()
    else:
        async with apostgres_pool(db, timeout=timeout) as pool:
            saver = AsyncPostgresSaver(pool)
            await arun_setup_once("checkpointer", db.url, saver.setup)
            yield saver
