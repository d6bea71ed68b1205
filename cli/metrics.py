"""``accord metrics-serve``: accord's ``/metrics`` on its own, for processes that run graphs
without a server of their own (or to watch the pending approvals of a database)."""

from __future__ import annotations

import typer

from accord.cli.app import DB_HELP, app, err, guarded
from accord.engine.session import Session


@app.command("metrics-serve")
def metrics_serve(
    db: str = typer.Option(None, "--db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(9464, "--port", help="Port to listen on"),
) -> None:
    """Serve /metrics (Prometheus text format): accord's metrics and the pending approvals."""
    import uvicorn

    from accord.checkpoints.urls import resolve_url
    from accord.server.app import build_app

    async def check() -> str:  # an unreachable database: one line and exit 2, before serving
        url = resolve_url(db)
        async with Session.open(url):
            return url

    url = guarded(check())
    err.print(f"serving http://{host}:{port}/metrics", highlight=False)
    uvicorn.run(build_app(url), host=host, port=port, log_level="warning")
