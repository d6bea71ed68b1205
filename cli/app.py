"""The ``accord`` Typer app and how it reports.

- An :class:`~accord.errors.AccordError` (bad input, a busy or unknown thread, an unreachable
  database, a refused request) is one line on stderr and exit code 2; nothing saved is lost.
- A database that fails mid-command is one line and exit code 2 too.
- Anything else is a bug in accord: one line naming it, exit code 1, the traceback written to
  ``.accord/logs/accord.log`` (or printed with ``--debug``).
- A run that fails is an outcome: status ``failed`` with its cause, exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import typer
from rich.console import Console

from accord.engine.session import RunOutcome
from accord.errors import AccordError
from accord.observability.logs import configure_logging, json_requested

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run, inspect and resume accord workflows.")
out = Console()
err = Console(stderr=True)

DB_HELP = "Database URL: sqlite:///path, postgresql://..., memory:// (default: $ACCORD_DB_URL or sqlite:///.accord/accord.db)"
GRAPH_HELP = "The thread's graph (file.py:attr or module:attr), when the thread does not record one accord can load"
LOG_FILE = Path(".accord/logs/accord.log")
"""Where the CLI writes the traceback of an unexpected error."""

DATABASE_ERRORS = (psycopg.OperationalError, sqlite3.OperationalError)
"""A database that fails under a command: the user's environment, not a bug."""

_settings: dict[str, Any] = {"debug": False}


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Print tracebacks of unexpected errors"),
    log_json: bool = typer.Option(False, "--log-json",
                                  help="Log each run's steps as JSON lines on stderr (or $ACCORD_LOG_JSON=1)"),
) -> None:
    _settings["debug"] = debug
    _route_logs(debug)
    if log_json or json_requested():
        configure_logging(json=True)


def _route_logs(debug: bool) -> None:
    """Warnings of accord and its libraries (a dropped pooled connection, a retry) go to the
    log file, not between the command's output and its one error line; ``--debug`` prints
    them as well."""
    root = logging.getLogger()
    if any(getattr(h, "accord_cli", False) for h in root.handlers):
        return
    handlers: list[logging.Handler] = [_LogFile(LOG_FILE, delay=True)]
    if debug:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.accord_cli = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if debug else logging.WARNING)


class _LogFile(logging.FileHandler):
    """The CLI's log file, created with its folder on the first record."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr and a non-zero exit: no traceback."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def report_bug(exc: BaseException) -> NoReturn:
    """An error accord did not expect: one line, the traceback to the log file, exit 1."""
    trace = "".join(traceback.format_exception(exc))
    if _settings["debug"]:
        err.print(trace, highlight=False, markup=False)
    where = "printed above"
    try:
        LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
        with LOG_FILE.open("a") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()}\n{trace}\n")
        where = f"traceback in {LOG_FILE}" if not _settings["debug"] else where
    except OSError:
        logging.getLogger("accord.cli").exception("internal error")
    fail(f"internal error: {type(exc).__name__}: {first_line(exc)} ({where}; please report it)", 1)


def guarded(coro: Any) -> Any:
    """Run a command's coroutine; errors become one line and an exit code."""
    try:
        return asyncio.run(coro)
    except typer.Exit:
        raise
    except AccordError as exc:
        fail(first_line(exc))
    except DATABASE_ERRORS as exc:
        if _settings["debug"]:
            err.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
        fail(f"database error: {first_line(exc)}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug: reported, never a bare traceback
        report_bug(exc)


def emit(outcome: RunOutcome, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(outcome.as_dict(), default=str))
    else:
        from accord.cli.render import fallback_text

        for fallback in outcome.fallbacks:
            out.print(f"[red]fallback[/] {fallback_text(fallback, done=True)}", highlight=False,
                      soft_wrap=True)
        style = {"done": "green", "interrupted": "yellow", "failed": "red"}.get(outcome.status, "white")
        out.print(f"[bold]{outcome.thread_id}[/] [{style}]{outcome.status}[/]", highlight=False)
        if outcome.error:
            out.print(f"[red]{outcome.error}[/]", highlight=False)
        if outcome.resume_hint:
            out.print(f"resume with: [bold]{outcome.resume_hint}[/]", highlight=False, soft_wrap=True)
    if outcome.status == "failed":
        raise typer.Exit(1)
