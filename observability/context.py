"""The log context: who and where a log line is about, carried by a context variable.

The engine binds the run's fields (graph, thread, run id, kind, trace id) when a run starts;
the agent step adds the agent's id and version, the node and the task; a model retry adds the
attempt. LangGraph runs every node in a task that copies the context it was started from, so a
line logged anywhere inside a run carries its fields. :class:`ContextFilter` copies them onto
stdlib ``logging`` records, with the current span's trace and span ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

FIELDS = ("graph", "thread_id", "run_id", "run_kind", "agent", "agent_version", "node",
          "task_id", "attempt", "trace_id", "span_id")
"""What a log line about a run may carry (besides the line's own fields)."""

_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("accord_log_context", default=None)


def current() -> dict[str, Any]:
    """The fields bound now (a copy)."""
    return dict(_CONTEXT.get() or {})


@contextmanager
def bound(**fields: Any) -> Iterator[dict[str, Any]]:
    """Bind ``fields`` (``None`` values are skipped) for the duration of the block."""
    merged = {**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield merged
    finally:
        try:
            _CONTEXT.reset(token)
        except ValueError:  # closed from another context (a generator finalised elsewhere)
            pass


def bind(**fields: Any) -> None:
    """Bind ``fields`` in the current context for good (a context made for one run)."""
    _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})


def trace_ids() -> dict[str, str]:
    """The current span's trace and span ids as hex, or nothing outside a valid span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def line_fields(**extra: Any) -> dict[str, Any]:
    """What a line logged now carries: the bound fields, the trace ids, then ``extra``."""
    own = {k: v for k, v in extra.items() if v is not None}
    return {**(_CONTEXT.get() or {}), **trace_ids(), **own}


def log(logger: logging.Logger, message: str, *args: Any, level: int = logging.INFO,
        base: dict[str, Any] | None = None, **fields: Any) -> None:
    """Log a line about a run, its fields gathered only when the level is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, message, *args, extra={**(base or {}), **line_fields(**fields)})


class ContextFilter(logging.Filter):
    """Adds the bound fields and trace ids to every record that does not set them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in line_fields().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


__all__ = ["FIELDS", "ContextFilter", "bind", "bound", "current", "line_fields", "log", "trace_ids"]
