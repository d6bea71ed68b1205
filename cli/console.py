"""``accord console-user add NAME --role viewer|approver|admin``: the web console's users.

The password is asked for (or read from ``--password-stdin``); an API token for scripts is
printed once. Both are stored hashed in accord's database.
"""

from __future__ import annotations

import asyncio
import sys

import typer

from accord.cli.app import DB_HELP, app, fail, guarded, out
from accord.errors import AccordError
from accord.server.auth import Role

users = typer.Typer(no_args_is_help=True, help="Users of the web console (/console).")
app.add_typer(users, name="console-user")


@users.command("add")
def add(
    name: str = typer.Argument(..., help="The name shown as the decider"),
    role: str = typer.Option("viewer", "--role", help="viewer, approver or admin"),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from stdin"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Create (or replace) a console user; prints the user's API token once."""
    try:
        chosen = Role.named(role)
    except AccordError as exc:
        fail(str(exc))
    if not name.strip() or len(name) > 200:
        fail("a user name needs 1 to 200 characters")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        fail("a password needs at least 8 characters")

    async def go() -> str:
        from accord.server.console.store import ConsoleStore

        store = ConsoleStore(db)
        try:
            return await asyncio.to_thread(store.add_user, name, chosen, password)
        finally:
            store.close()

    token = guarded(go())
    out.print(f"{name} ({chosen.name.lower()}) saved; API token (shown once): {token}",
              highlight=False, soft_wrap=True)


__all__ = ["users"]
