"""``accord relay``: publish the outbox of accord's database to a broker."""

from __future__ import annotations

import asyncio
import signal

import typer

from accord.cli.app import DB_HELP, app, err, guarded, out


@app.command()
def relay(
    broker: str = typer.Option(..., "--broker", help="redis://host:6379/0?stream=accord.events "
                               "or nats://host:4222?stream=ACCORD"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    once: bool = typer.Option(False, "--once", help="Publish what is waiting, then stop"),
    batch: int = typer.Option(200, "--batch", min=1, help="Rows leased at a time"),
    lease: float = typer.Option(30.0, "--lease", min=0.1,
                                help="Seconds a leased row waits before another relay may take it"),
) -> None:
    """Publish task, approval and thread events to a broker, at least once (consumers
    deduplicate on event_id); runs until stopped (SIGTERM / Ctrl-C)."""
    from accord.workers.brokers import open_broker
    from accord.workers.relay import OutboxTable, Relay

    async def go() -> int:
        table = await asyncio.to_thread(OutboxTable, db)
        target = open_broker(broker)
        try:
            await target.connect()  # an unreachable broker at start is one line
            runner = Relay(table, target, batch=batch, lease=lease)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            err.print(f"relay: {table.db.display} -> {target.name}; "
                      f"{await asyncio.to_thread(table.pending)} events waiting", highlight=False)
            return await runner.run(stop, until_empty=once)
        finally:
            await target.close()
            table.close()

    published = guarded(go())
    out.print(f"published {published} events", highlight=False)
