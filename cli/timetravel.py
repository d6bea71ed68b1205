"""``accord history | replay | fork | prune``: time travel and retention."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import timedelta
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from accord.checkpoints import prune_saver
from accord.checkpoints.errors import CheckpointError
from accord.checkpoints.timetravel import fork as fork_thread
from accord.checkpoints.timetravel import history as thread_history
from accord.checkpoints.timetravel import parse_assignments
from accord.cli.app import DB_HELP, GRAPH_HELP, app, emit, fail, guarded, out
from accord.cli.render import LiveView
from accord.engine.session import RunOutcome, Session

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w``."""
    found = _DURATION.match(text.strip())
    if not found:
        raise CheckpointError(f"cannot read duration {text!r}; use e.g. 30m, 12h, 7d")
    return timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})


@app.command()
def history(
    thread: str = typer.Argument(...),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
    graph_ref: str = typer.Option(None, "--graph", help=GRAPH_HELP),
) -> None:
    """A thread's checkpoints, newest first: step, node, time, what runs next."""

    async def load() -> list:
        async with Session.open(db, graph_ref=graph_ref) as session:
            return await thread_history(session.graph(await session.graph_of(thread)), thread)

    entries = guarded(load())
    if as_json:
        out.print_json(json.dumps([e.as_dict() for e in entries], default=str))
        return
    table = Table("checkpoint", "step", "source", "node", "next", "created", title=f"history of {thread}")
    for entry in entries:
        if entry.error:
            table.add_row(entry.checkpoint_id, "?", "[red]unreadable[/]", entry.node or "", "",
                          entry.error[:60])
            continue
        table.add_row(entry.checkpoint_id, str(entry.step), entry.source, entry.node or "",
                      ",".join(entry.next), entry.created_at[:23])
    out.print(table)


@app.command()
def replay(
    thread: str = typer.Argument(...),
    checkpoint: str = typer.Option(..., "--from", help="Checkpoint id (see accord history)"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
    graph_ref: str = typer.Option(None, "--graph", help=GRAPH_HELP),
) -> None:
    """Re-run a thread from a checkpoint (side effects already done are not repeated)."""
    view = LiveView(out, enabled=not as_json)

    async def go() -> RunOutcome:
        async with Session.open(db, graph_ref=graph_ref) as session:
            return await session.replay(thread, checkpoint, view)

    emit(guarded(go()), as_json)


@app.command()
def fork(
    thread: str = typer.Argument(...),
    checkpoint: str = typer.Option(..., "--at", help="Checkpoint id to fork from"),
    assignments: list[str] = typer.Option([], "--set", help="key=value (JSON value); context.KEY=value edits shared context"),
    new_thread: str = typer.Option(None, "--thread", help="Id of the new thread"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
    graph_ref: str = typer.Option(None, "--graph", help=GRAPH_HELP),
) -> None:
    """Copy a thread at a checkpoint into a new thread, with edits; the original is untouched."""
    new_id = new_thread or f"{thread}-fork-{uuid.uuid4().hex[:6]}"

    async def go() -> RunOutcome:
        values = parse_assignments(assignments)
        async with Session.open(db, graph_ref=graph_ref) as session:
            name = await session.graph_of(thread)
            await fork_thread(session.graph(name), thread, checkpoint, new_id, values, by="cli")
            return await session.outcome(name, new_id)

    emit(guarded(go()), as_json)


@app.command()
def prune(
    keep_latest: bool = typer.Option(False, "--keep-latest", help="Keep only each thread's latest checkpoint"),
    older_than: str = typer.Option(None, "--older-than",
                                   help="Delete threads idle longer than this (7d, 12h); default $ACCORD_THREAD_TTL"),
    status: str = typer.Option(None, "--status", help="Only threads with this status (e.g. done)"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Shrink the checkpoint database: old threads, old checkpoints."""
    older_than = older_than or os.environ.get("ACCORD_THREAD_TTL") or None
    if not keep_latest and older_than is None:
        fail("say what to prune: --keep-latest and/or --older-than DURATION (or set ACCORD_THREAD_TTL)")
    async def go() -> Any:
        age = parse_duration(older_than) if older_than else None
        async with Session.open(db) as session:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True,
                          disable=as_json) as progress:
                progress.add_task("pruning checkpoints…")
                return await session.saver._offload(
                    prune_saver, session.saver, keep_latest=keep_latest, older_than=age,
                    status=status)

    report = guarded(go())
    data = {
        "threads_deleted": len(report.threads_deleted),
        "threads_pruned": len(report.threads_pruned),
        "checkpoints_deleted": report.checkpoints_deleted,
        "writes_deleted": report.writes_deleted,
        "bytes_before": report.before.bytes,
        "bytes_after": report.after.bytes,
    }
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("what", "value", title="prune")
    for key, value in data.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
