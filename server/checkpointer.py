"""The checkpointer `langgraph dev` / the Agent Server use for accord's graphs.

`langgraph.json` points the server at it::

    "checkpointer": {"path": "./server/checkpointer.py:accord_saver"}

The server calls `accord_saver()` at start-up, enters the async context manager it returns
(once per event loop), routes every checkpoint read and write through the saver it yields,
and exits it at shutdown. The saver is accord's, opened from `$ACCORD_DB_URL` (default
`sqlite:///.accord/accord.db`, PostgreSQL in production), so a thread's state outlives the
server and can be read with `accord.checkpoints.open_saver` under the server's thread id.

The server wraps it in an adapter of its own; accord's engine finds accord's saver behind it,
so runs started from Studio or the SDK are engine runs like any other: locked, fenced, kept in
accord's thread index and audit log. The in-memory dev server still keeps its own thread, run
and assistant records under `.langgraph_api/` in its working directory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver

from accord.checkpoints import open_async_saver
from accord.checkpoints.urls import parse_url, resolve_url

logger = logging.getLogger(__name__)


@asynccontextmanager
async def accord_saver() -> AsyncIterator[BaseCheckpointSaver]:
    """Yield accord's async saver for `$ACCORD_DB_URL` and close its connections on exit."""
    url, where = await asyncio.to_thread(_configured)
    logger.info("accord checkpointer: %s", where)
    async with open_async_saver(url) as saver:
        yield saver


def _configured() -> tuple[str, str]:
    """The configured URL and its password-free description (touches the file system)."""
    url = resolve_url()
    return url, parse_url(url).display
