"""The ``accord`` Typer app and how it reports: one clear line for user errors, JSON for scripts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any, NoReturn

import psycopg
import typer
from rich.console import Console

from accord.agents.registry import RegistryError
from accord.checkpoints import CheckpointError
from accord.cli.session import RunOutcome
from accord.graphs.errors import AccordError
from accord.guardrails import GuardrailTripwireTriggered

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run, inspect and resume accord workflows.")
out = Console()
err = Console(stderr=True)

DB_HELP = "Database URL: sqlite:///path, postgresql://..., memory:// (default: $ACCORD_DB_URL or sqlite:///.accord/accord.db)"
USER_ERRORS = (
    AccordError, CheckpointError, RegistryError, GuardrailTripwireTriggered, ValueError,
    KeyError, LookupError,
    psycopg.Error, sqlite3.Error, OSError,
)
"""Errors a user can cause (bad input, bad config, unreachable database): one line, exit 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr and a non-zero exit: no traceback."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except USER_ERRORS as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def emit(outcome: RunOutcome, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(outcome.as_dict(), default=str))
    else:
        style = {"done": "green", "interrupted": "yellow", "failed": "red"}.get(outcome.status, "white")
        out.print(f"[bold]{outcome.thread_id}[/] [{style}]{outcome.status}[/]", highlight=False)
        if outcome.error:
            out.print(f"[red]{outcome.error}[/]", highlight=False)
        if outcome.resume_hint:
            out.print(f"resume with: [bold]{outcome.resume_hint}[/]", highlight=False, soft_wrap=True)
    if outcome.status == "failed":
        raise typer.Exit(1)


