"""Open accord's saver from a URL: ``memory://``, ``sqlite:///path`` or ``postgresql://…``.

```python
with open_saver("sqlite:///.accord/accord.db") as saver:
    graph = workflow.compile(checkpointer=saver)
    graph.invoke(...)          # or await graph.ainvoke(...): one saver serves both
```

The saver is LangGraph's stock saver for the backend with accord's runs in front (see
``accord_saver.py``): thread locks, fencing, the thread index, the audit log and the tool
ledger live in the same database as the checkpoints. Every saver supports
``prune(thread_ids, strategy=...)``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from accord.checkpoints.accord_saver import AccordSaver
from accord.checkpoints.connections import (
    CONNECT_TIMEOUT,
    connect_postgres,
    connect_sqlite,
    postgres_pool,
    run_setup_once,
)
from accord.checkpoints.errors import UnsupportedOption
from accord.checkpoints.locks import LockSession
from accord.checkpoints.memory import AccordMemorySaver
from accord.checkpoints.postgres import AccordPostgresSaver
from accord.checkpoints.sqlite import AccordSqliteSaver
from accord.checkpoints.urls import Backend, parse_url, resolve_url

POOL_SIZE_ENV = "ACCORD_DB_POOL_SIZE"
POOL_SIZE = 20


def pool_size_default() -> int:
    """``$ACCORD_DB_POOL_SIZE`` (a positive number), else 20."""
    raw = os.environ.get(POOL_SIZE_ENV, "").strip()
    if not raw:
        return POOL_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise UnsupportedOption(f"{POOL_SIZE_ENV} must be a positive number of connections, "
                            f"not {raw!r}")
    return int(raw)


@contextmanager
def open_saver(
    url: str | None = None, *, timeout: float = CONNECT_TIMEOUT, pool_size: int | None = None
) -> Iterator[AccordSaver]:
    """Yield accord's saver for ``url`` (see ``resolve_url``) and close its connections on exit.

    PostgreSQL connections come from a pool of at most ``pool_size`` (default
    ``$ACCORD_DB_POOL_SIZE``, else 20), opened as they are needed.

    Raises ``UnknownScheme`` for an unsupported URL and ``DatabaseUnreachable`` when the
    database cannot be reached within ``timeout`` seconds.
    """
    db = parse_url(resolve_url(url))
    saver: AccordSaver
    if db.backend is Backend.MEMORY:
        saver = AccordMemorySaver()
        try:
            yield saver
        finally:
            saver.close_executor()
    elif db.backend is Backend.SQLITE:
        conn = connect_sqlite(db)
        saver = AccordSqliteSaver(conn, db.path)
        try:
            saver.setup()
            yield saver
        finally:
            saver.close_executor()
            conn.close()
    else:
        with postgres_pool(db, timeout=timeout, max_size=pool_size or pool_size_default()) as pool:
            locks = LockSession(lambda: connect_postgres(db, timeout))
            saver = AccordPostgresSaver(pool, locks)
            try:
                run_setup_once("checkpointer", db.url, saver.setup)
                yield saver
            finally:
                saver.close_executor()
                locks.close()


@asynccontextmanager
async def open_async_saver(
    url: str | None = None, *, timeout: float = CONNECT_TIMEOUT, pool_size: int | None = None
) -> AsyncIterator[AccordSaver]:
    """``open_saver`` for async code: opening and closing happen off the event loop."""
    manager = open_saver(url, timeout=timeout, pool_size=pool_size)
    saver = await asyncio.to_thread(manager.__enter__)
    try:
        yield saver
    except BaseException as exc:
        await asyncio.to_thread(manager.__exit__, type(exc), exc, exc.__traceback__)
        raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)


__all__ = ["open_async_saver", "open_saver"]
