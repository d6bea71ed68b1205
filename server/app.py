"""accord's HTTP app: the runs API under ``/api`` (``accord.server.runs``) and ``/metrics`` in
Prometheus' text format, served by ``accord serve``, ``accord metrics-serve`` and inside
``langgraph dev`` / the Agent Server.

The runs API's work goes to an executor (``accord.server.executors``): in this process by
default, to accord's workers with ``executor=queue_executor`` (or ``$ACCORD_WORKERS=1``).
The console's users and API tokens guard the runs API once any user exists; another check
plugs in as ``build_app(authorize=...)`` (``accord.server.access``).

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
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accord.observability.context import ContextFilter
from accord.observability.metrics import PendingApprovals, metrics, track, untrack
from accord.records import ThreadStatus
from accord.server.access import Authorize, console_users

logger = logging.getLogger(__name__)

WORKERS_ENV = "ACCORD_WORKERS"
"""Set to 1 to send the runs API's work to accord's workers."""
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


CONCURRENCY_ENV = "ACCORD_RUNS_CONCURRENCY"
"""How many runs the embedded executor runs at once (default 4)."""


def in_process(session: Any, _url: str) -> Any:
    """The embedded executor: runs in this process, ``$ACCORD_RUNS_CONCURRENCY`` (4) at a
    time."""
    from accord.server.executors import InProcessExecutor

    return InProcessExecutor(session, concurrency=int(os.environ.get(CONCURRENCY_ENV) or 4))


def queue_executor(_session: Any, url: str) -> Any:
    """Runs go to accord's workers through their queue on the same database."""
    from accord.server.executors import QueueExecutor

    return QueueExecutor(url)


def workers_requested() -> bool:
    return (os.environ.get(WORKERS_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def build_app(url: str | None = None, *, refresh: float | None = None, runs: bool = True,
              executor: Callable[[Any, str], Any] | None = None,
              authorize: Authorize | None = None, poll: float = 0.25,
              graphs: dict[str, str] | None = None) -> Starlette:
    """The app; ``url`` is the database (default ``$ACCORD_DB_URL``): its thread index gives
    the pending approvals, re-read every ``refresh`` seconds (default
    ``$ACCORD_METRICS_REFRESH`` or 15) to see what other processes did, and the runs API
    (``runs=True``) runs on it. ``executor(session, url)`` builds where runs go (default:
    in-process, or the workers' queue with ``$ACCORD_WORKERS=1``); ``authorize`` is the
    authentication hook (default: the console's users and tokens once any exists,
    ``accord.server.access.console_users``); ``poll`` is how often an event stream reads the database; ``graphs``
    names graphs the API may run beyond the catalog and ``./langgraph.json``. Nothing
    is opened before the app starts."""
    from accord.server.console import Console, console_routes
    from accord.server.runs import RunsAPI

    console = Console(url)
    authorize = authorize or console_users(console)
    api = RunsAPI(authorize=authorize, poll=poll, graphs=dict(graphs or {})) if runs else None

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        from accord.checkpoints import open_async_saver
        from accord.checkpoints.urls import resolve_url

        _log_context_on_handlers()
        metrics()  # the families exist from the first scrape on
        every = refresh if refresh is not None else float(
            os.environ.get(REFRESH_ENV) or DEFAULT_REFRESH)
        where = url or resolve_url()
        async with AsyncExitStack() as stack:
            saver = await stack.enter_async_context(open_async_saver(where))
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
            if api is not None:
                from accord.engine.session import Session

                session = Session(saver)
                build = executor or (queue_executor if workers_requested() else in_process)
                runner = build(session, where)
                await runner.start()
                stack.push_async_callback(runner.stop)
                api.bind(session, runner)
            track(pending)
            task = asyncio.create_task(keep_loading(), name="accord-pending-approvals")
            try:
                yield {}
            finally:
                task.cancel()
                untrack(pending)

    routes = [Route("/metrics", metrics_endpoint, methods=["GET"]),
              *console_routes(url, console=console)]
    return Starlette(routes=routes + (api.routes() if api is not None else []),
                     lifespan=lifespan)


__all__ = ["build_app", "in_process", "metrics_endpoint", "queue_executor"]
