"""``accord health``: the circuit breakers stored in accord's database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.table import Table

from accord.cli.app import DB_HELP, app, guarded, out
from accord.engine.session import Session
from accord.resilience import breakers_for


def _when(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds") if seconds else ""


@app.command()
def health(
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List each circuit breaker (agent and model provider) and its state."""

    async def go() -> list:
        async with Session.open(db) as session:
            return await session.saver._offload(breakers_for(session.saver).all)

    rows = [b.as_dict() for b in guarded(go())]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no circuit breakers recorded")
        return
    table = Table("breaker", "state", "failures", "opened", "updated")
    style = {"closed": "green", "half_open": "yellow", "open": "red"}
    for row in rows:
        table.add_row(row["name"], f"[{style[row['state']]}]{row['state']}[/]",
                      str(row["failures"]), _when(row["opened_at"]), _when(row["updated_at"]))
    out.print(table)
