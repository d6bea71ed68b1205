"""``accord serve``: the runs API (``/api/...``) and ``/metrics`` on one HTTP server.

Runs go to an in-process executor, or with ``--workers-queue`` (or ``$ACCORD_WORKERS=1``) to
accord's workers through their queue on the same database. An unreachable database or a taken
port is one line on stderr and exit code 2, before anything is served.
"""

from __future__ import annotations

import errno
import socket

import typer

from accord.cli.app import DB_HELP, app, err, fail, guarded
from accord.engine.session import Session


def _check_port(host: str, port: int) -> None:
    """Fail with one line when the address is taken (or cannot be bound)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = ("is already in use" if exc.errno == errno.EADDRINUSE
                   else f"cannot be used: {exc.strerror}")
            fail(f"cannot serve on {host}:{port}: the address {why}")


async def _check_queue(url: str) -> None:
    """Open the workers' queue once: a missing or unreachable queue fails before serving."""
    try:
        from accord.workers.queue import WorkerQueue
    except ImportError:
        fail("--workers-queue: accord's worker queue (accord.workers.queue) is not available")
    async with WorkerQueue(url):
        pass


@app.command("serve")
def serve(
    db: str = typer.Option(None, "--db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(8000, "--port", help="Port to listen on"),
    workers_queue: bool = typer.Option(
        False, "--workers-queue",
        help="Send runs to accord's workers (or $ACCORD_WORKERS=1); default: run in-process"),
) -> None:
    """Serve the runs API (/api/runs, /api/threads/...) and /metrics."""
    import uvicorn

    from accord.checkpoints.urls import resolve_url
    from accord.server.app import build_app, in_process, queue_executor, workers_requested

    to_workers = workers_queue or workers_requested()

    async def check() -> str:  # an unreachable database: one line and exit 2, before serving
        url = resolve_url(db)
        async with Session.open(url):
            pass
        if to_workers:
            await _check_queue(url)
        return url

    url = guarded(check())
    _check_port(host, port)
    application = build_app(url, executor=queue_executor if to_workers else in_process)
    where = "accord's workers" if to_workers else "this process"
    err.print(f"serving http://{host}:{port}/api (runs in {where}) and /metrics",
              highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning")
