"""Log output at the edges: JSON lines or a readable console, through structlog.

The library logs with the standard ``logging`` module only. An application (the ``accord``
CLI, the dev server's process, a worker) calls :func:`configure_logging` once to render every
record, accord's and its libraries', as one JSON object per line (``json=True``,
``--log-json``, ``ACCORD_LOG_JSON=1``) or, on a terminal, as coloured console lines. Records
about a run carry its fields (``accord.observability.context``): graph, thread, run id, agent
and version, node, task, attempt, latency, tokens, trace and span ids.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, Any

import structlog

from accord.observability.context import ContextFilter

JSON_ENV = "ACCORD_LOG_JSON"
LEVEL_ENV = "ACCORD_LOG_LEVEL"

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def json_requested(env: dict[str, str] | None = None) -> bool:
    """Whether the environment asks for JSON lines (``ACCORD_LOG_JSON`` 1/true/yes)."""
    value = (os.environ if env is None else env).get(JSON_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _extras(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Copy a stdlib record's own fields (``extra=``, the log context) into the event."""
    record = event.get("_record")
    if record is not None:
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in event:
                event[key] = value
        if "event" in vars(record):  # a line's own kind; the message stays the event text
            event["kind"] = vars(record)["event"]
    return event


def formatter(*, json: bool) -> structlog.stdlib.ProcessorFormatter:
    """A ``logging.Formatter`` rendering records as JSON lines or console lines."""
    renderer: Any = (structlog.processors.JSONRenderer(default=str) if json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _extras,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )


def configure_logging(*, json: bool | None = None, level: int | str | None = None,
                      stream: IO[str] | None = None) -> logging.Handler:
    """Send every record to ``stream`` (stderr) as JSON lines or console lines; returns the
    handler (installed once: a second call replaces it)."""
    json = json_requested() if json is None else json
    level = level or os.environ.get(LEVEL_ENV) or logging.INFO
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "accord_structured", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.accord_structured = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter(json=json))
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else str(level).upper())
    return handler


__all__ = ["configure_logging", "formatter", "json_requested"]
