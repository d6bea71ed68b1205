"""``accord dlq list | show | retry | discard``: the dead letters in accord's database."""

from __future__ import annotations

import json

import typer
from rich.table import Column, Table

from accord.checkpoints.letters import DeadLetter, LetterStatus
from accord.cli.app import DB_HELP, GRAPH_HELP, app, emit, fail, guarded, out
from accord.cli.render import LiveView
from accord.engine.session import RunOutcome, Session
from accord.resilience import deadletters

dlq = typer.Typer(no_args_is_help=True, help="Dead letters: work accord could not finish.")
app.add_typer(dlq, name="dlq")


def _row(letter: DeadLetter) -> list[str]:
    return [letter.id, letter.thread_id, letter.node or "", letter.reason.value,
            letter.status.value, str(letter.attempts),
            letter.created_at.strftime("%Y-%m-%d %H:%M")]


@dlq.command("list")
def list_(
    status: str = typer.Option(None, "--status", help="dead, retried or discarded"),
    thread: str = typer.Option(None, "--thread", help="Only this thread's letters"),
    limit: int = typer.Option(50, "--limit"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List dead letters, newest first (``dlq show ID`` gives the error and the payload)."""
    if status is not None and status not in {s.value for s in LetterStatus}:
        fail(f"unknown status {status!r}; use dead, retried or discarded")

    async def go() -> list[DeadLetter]:
        async with Session.open(db) as session:
            saver = session.saver
            return await saver._offload(deadletters.letters, saver, status=status,
                                        thread_id=thread, limit=limit)

    found = guarded(go())
    if as_json:
        out.print_json(json.dumps([x.as_dict() for x in found]))
        return
    if not found:
        out.print("no dead letters")
        return
    table = Table(Column("letter", no_wrap=True, min_width=19),
                  *(Column(name, no_wrap=True) for name in (
                      "thread", "node", "reason", "status", "tries", "created")))
    for letter in found:
        table.add_row(*_row(letter))
    out.print(table)


@dlq.command()
def show(
    letter_id: str = typer.Argument(..., metavar="ID"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one dead letter: its payload, error, attempts, agent, thread and checkpoint."""

    async def go() -> DeadLetter:
        async with Session.open(db) as session:
            return await session.saver._offload(deadletters.get, session.saver, letter_id)

    letter = guarded(go())
    data = letter.as_dict()
    if as_json:
        out.print_json(json.dumps(data))
        return
    for key, value in data.items():
        shown = json.dumps(value, indent=2) if isinstance(value, dict | list) else value
        out.print(f"[bold]{key}[/]: {'' if shown is None else shown}", highlight=False)


@dlq.command()
def retry(
    letter_id: str = typer.Argument(..., metavar="ID"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
    graph_ref: str = typer.Option(None, "--graph", help=GRAPH_HELP),
) -> None:
    """Re-enter the letter's thread from its checkpoint and run it on."""
    view = LiveView(out, enabled=not as_json)

    async def go() -> RunOutcome:
        async with Session.open(db, graph_ref=graph_ref) as session:
            return await session.retry_letter(letter_id, view)

    emit(guarded(go()), as_json)


@dlq.command()
def discard(
    letter_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option(None, "--reason", help="Why it is given up"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Give a dead letter up (kept, as discarded, until its thread is pruned)."""

    async def go() -> DeadLetter:
        async with Session.open(db) as session:
            return await session.saver._offload(deadletters.discard, session.saver, letter_id,
                                                reason)

    letter = guarded(go())
    if as_json:
        out.print_json(json.dumps(letter.as_dict()))
        return
    out.print(f"{letter.id} discarded", highlight=False)
