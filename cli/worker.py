"""``accord worker``: run and resume threads from the workers' queue in PostgreSQL."""

from __future__ import annotations

import logging
import os

import typer

from accord.cli.app import DB_HELP, app, err, fail, guarded


def _structured_logs() -> None:
    """Logs on stderr, JSON lines with ``--log-json`` (already set up then), INFO and up."""
    from accord.observability.logs import configure_logging

    root = logging.getLogger()
    if not any(getattr(h, "accord_structured", False) for h in root.handlers):
        configure_logging(json=False)
    root.setLevel(os.environ.get("ACCORD_LOG_LEVEL", "INFO").upper())


@app.command()
def worker(
    db: str = typer.Option(None, "--db", help=DB_HELP + "; must be PostgreSQL"),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Jobs run at once"),
    queues: str = typer.Option("accord", "--queues", help="Comma-separated queues to take jobs from"),
    metrics_port: int = typer.Option(None, "--metrics-port", help="Serve /metrics on this port"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address /metrics listens on"),
    init: bool = typer.Option(False, "--init", help="Create the queue's schema first if missing"),
    heartbeat: float = typer.Option(10.0, "--heartbeat", min=0.1, help="Seconds between heartbeats"),
    stalled_after: float = typer.Option(30.0, "--stalled-after", min=0.5,
                                        help="Seconds of silence after which a worker's jobs go to another"),
    chores_every: int = typer.Option(10, "--chores-every", min=1, max=59,
                                     help="Seconds between periodic chores (stalled jobs, stuck threads)"),
    stuck_after: float = typer.Option(600.0, "--stuck-after", min=0.0,
                                      help="Seconds a 'running' thread may go without an update before it is driven again"),
    retention: str = typer.Option(None, "--retention",
                                  help="Prune threads idle longer than this (7d); default $ACCORD_THREAD_TTL"),
    grace: float = typer.Option(30.0, "--grace", min=0.0,
                                help="Seconds a stopping worker lets running jobs finish"),
) -> None:
    """Run queued accord jobs (new requests, decisions) until SIGTERM."""
    from accord.workers.app import WorkerSettings, apply_schema, postgres_url
    from accord.workers.runner import run_worker

    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    if not chosen:
        fail("--queues needs at least one queue name")
    retention = retention or os.environ.get("ACCORD_THREAD_TTL") or None
    if retention:
        from accord.cli.timetravel import parse_duration
        from accord.errors import AccordError

        try:
            parse_duration(retention)
        except AccordError as exc:
            fail(str(exc))
    settings = WorkerSettings(
        queues=tuple(chosen), concurrency=concurrency, heartbeat=heartbeat,
        stalled_after=stalled_after, chores_every=chores_every, stuck_after=stuck_after,
        retention=retention, grace=grace)

    async def go() -> None:
        import asyncio

        url = postgres_url(db)
        if init and await asyncio.to_thread(apply_schema, url):
            err.print("created the workers' queue schema", highlight=False)
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=metrics_host)
        await run_worker(url, settings)

    _structured_logs()
    guarded(go())

