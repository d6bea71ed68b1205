"""``accord usage``: what model calls cost, from ``accord_usage``, grouped."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.table import Table

from accord.cli.app import DB_HELP, app, fail, guarded, out
from accord.engine.session import Session
from accord.guardrails.usage import GROUPS, total, usage_for


@app.command()
def usage(
    by: str = typer.Option("agent", "--by", help="Group by agent, user, day or model"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Model calls, tokens and cost (from the models' usage metadata and the configured prices)."""
    if by not in GROUPS:
        fail(f"--by must be one of {', '.join(GROUPS)}, not {by!r}")

    async def go() -> list:
        async with Session.open(db) as session:
            return await session.saver._offload(usage_for(session.saver).summary, by)

    rows = guarded(go())
    if as_json:
        out.print_json(json.dumps([asdict(r) for r in rows]))
        return
    if not rows:
        out.print("no model usage recorded")
        return
    table = Table(by, "calls", "input tokens", "output tokens", "cost (USD)")
    for row in [*rows, total(rows)]:
        table.add_row(row.group, str(row.calls), str(row.input_tokens), str(row.output_tokens),
                      f"{row.cost:.4f}", style="bold" if row.group == "total" else None)
    out.print(table)
