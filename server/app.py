"""accord's HTTP routes: ``/metrics`` in Prometheus' text format, served by ``accord
metrics-serve`` and inside ``langgraph dev`` / the Agent Server.

``langgraph.json`` names the app (``"http": {"app": "./server/langgraph_app.py:app"}``). The
server keeps its own ``/metrics`` route (it cannot be shadowed) and serves prometheus_client's
default registry from it, where accord's metrics live: the app's lifespan adds what the
database knows, the pending approvals of the thread index and their age (loaded from the saver
it opens, ``$ACCORD_DB_URL``, kept current by this process's runs and re-read every few
seconds; a scrape does no I/O), and puts the run fields on the server's log lines
(with ``LOG_JSON=true`` they are JSON lines). ``accord metrics-serve`` serves the same app on its
own.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accord.observability.context import ContextFilter
from accord.observability.metrics import PendingApprovals, metrics, track, untrack
from accord.records import ThreadStatus

logger = logging.getLogger(__name__)

REFRESH_ENV = "ACCORD_METRICS_REFRESH"
DEFAULT_REFRESH = 15.0


async def metrics_endpoint(_request: Request) -> Response:
    """The default registry in Prometheus' text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _log_context_on_handlers() -> None:
    """Put the run fields on every record the server's handlers write."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())


def build_app(url: str | None = None, *, refresh: float | None = None) -> Starlette:
    """The app; ``url`` is the database whose thread index gives the pending approvals
    (default ``$ACCORD_DB_URL``), re-read every ``refresh`` seconds (default
    ``$ACCORD_METRICS_REFRESH`` or 15) to see what other processes did. Nothing is opened
    before the app starts."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        from accord.checkpoints import open_async_saver
        from accord.checkpoints.urls import resolve_url

        _log_context_on_handlers()
        metrics()  # the families exist from the first scrape on
        every = refresh if refresh is not None else float(
            os.environ.get(REFRESH_ENV) or DEFAULT_REFRESH)
        async with open_async_saver(url or resolve_url()) as saver:
            pending = PendingApprovals()

            async def load() -> None:
                pending.replace(await saver._offload(saver.threads.list,
                                                     status=ThreadStatus.INTERRUPTED))

            async def keep_loading() -> None:
                while True:
                    await asyncio.sleep(every)
                    try:
                        await load()
                    except Exception:  # noqa: BLE001 - the next round tries again
                        logger.warning("pending approvals: the thread index could not be read",
                                       exc_info=True)

            await load()
            track(pending)
            task = asyncio.create_task(keep_loading(), name="accord-pending-approvals")
            try:
                yield {}
            finally:
                task.cancel()
                untrack(pending)

    from accord.server.console import console_routes

    return Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET"]),
                             *console_routes(url)], lifespan=lifespan)


__all__ = ["build_app", "metrics_endpoint"]
