"""One run, observed: its span, its log context, its metrics and its log lines.

The engine wraps every run in :func:`observe_run` (one call) and iterates the graph's stream
through :meth:`RunObservation.stream`, whatever started the run. The run gets a context of its
own, made when it starts: the run's span (``accord.run``) is current in it, the run's log
fields are bound in it, and every step of the graph's stream runs in it, even when the caller
reads each chunk from a different task (the LangGraph server does). So the agent steps, model
and tool calls and routing decisions of the run nest under the run's span, and every line
logged inside carries the run's fields.

The span's W3C ``traceparent`` is stamped on the run's spec, and so recorded with the thread
when the run claims it; a run that resumes the thread (an approval's decision, a continuation
after a crash) reads it back and starts as a child of the run that paused it, in the same
trace, linked to whatever span its caller had open.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from accord.checkpoints.runs import RunKind
from accord.observability.context import bind, log
from accord.observability.metrics import metrics, note_run_end
from accord.observability.traces import attrs, context_of, link_to, traceparent, tracer

logger = logging.getLogger("accord.run")

T = TypeVar("T")

JOINS_TRACE = (RunKind.RESUME, RunKind.CONTINUE)
"""Runs that carry on a run before them, and so join its trace."""

_STOPPED = (GeneratorExit, asyncio.CancelledError, KeyboardInterrupt)
_DONE = object()


@dataclass
class RunObservation:
    """What is known of a run in progress (inside it: :func:`current_run`)."""

    graph: str
    kind: str
    thread_id: str | None
    run_id: str | None
    span: trace.Span
    context: contextvars.Context
    """The run's own context: its span current, its log fields bound."""
    started: float = field(default_factory=time.perf_counter)
    handle: Any = None
    """The saver's run handle once the thread is claimed."""
    calls: Any = None
    """The run's ``CallObserver``."""
    tokens_in: int = 0
    tokens_out: int = 0

    def add_tokens(self, tokens_in: int, tokens_out: int) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out

    async def claim(self, claiming: Awaitable[T]) -> T:
        """Await the thread's claim, timing the wait for its lock."""
        started = time.perf_counter()
        try:
            handle = await claiming
        finally:
            metrics().lock_wait.labels(self.graph).observe(time.perf_counter() - started)
        self.handle = handle
        return handle

    async def stream(self, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
        """``chunks`` (the graph's stream), each step run in the run's context."""

        async def step() -> Any:
            try:
                return await chunks.__anext__()
            except StopAsyncIteration:
                return _DONE

        try:
            while True:
                chunk = await asyncio.create_task(step(), context=self.context)
                if chunk is _DONE:
                    return
                yield chunk
        finally:
            closing = getattr(chunks, "aclose", None)
            if closing is not None:
                await asyncio.create_task(_close(chunks), context=self.context)

    def status(self, error: BaseException | None) -> str:
        if error is not None:
            if isinstance(error, _STOPPED):
                return "cancelled"
            from accord.checkpoints.errors import ThreadBusy

            refused = isinstance(error, ThreadBusy) or (
                self.handle is None and self.kind != "plain")
            return "refused" if refused else "failed"
        handle = self.handle
        if handle is not None and handle.interrupts:
            return "interrupted"
        if handle is not None and handle.head is not None and not handle.final:
            return "running"
        return "done"


async def _close(chunks: Any) -> None:
    await chunks.aclose()


_RUN: ContextVar[RunObservation | None] = ContextVar("accord_run", default=None)


def current_run() -> RunObservation | None:
    """The run the calling code belongs to, if any."""
    return _RUN.get()


async def _stored_trace(saver: Any, thread_id: str) -> str | None:
    try:
        record = await saver._offload(saver.threads.get, thread_id)
    except Exception:  # noqa: BLE001 - the claim reports a database that cannot be read
        return None
    return getattr(record, "trace", None)


def _enter(seen: RunObservation) -> None:
    """Make the run's context (run inside it)."""
    from accord.observability.calls import observe_calls

    otel_context.attach(trace.set_span_in_context(seen.span))
    _RUN.set(seen)
    bind(graph=seen.graph, thread_id=seen.thread_id, run_id=seen.run_id, run_kind=seen.kind)
    seen.calls = observe_calls()
    log(logger, "run started", event="run_started")


@asynccontextmanager
async def observe_run(graph: str, run: Any) -> AsyncIterator[RunObservation]:
    """Observe one engine run (``run``: the engine's plan, with ``spec``, ``saver``, ``config``).

    Stamps ``run.spec`` with the run span's ``traceparent`` (recorded with the thread).
    """
    spec = run.spec
    configurable = (run.config or {}).get("configurable") or {}
    thread_id = spec.thread_id if spec is not None else configurable.get("thread_id")
    kind = spec.kind.value if spec is not None else "plain"
    parent: otel_context.Context | None = None
    links: list[trace.Link] = []
    if spec is not None and spec.kind in JOINS_TRACE and run.saver is not None:
        parent = context_of(await _stored_trace(run.saver, spec.thread_id))
        if parent is not None:
            links = link_to(traceparent())  # the caller's own span, if it has one
    span = tracer().start_span(
        "accord.run", context=parent, links=links, kind=trace.SpanKind.INTERNAL,
        attributes=attrs(**{"accord.graph": graph, "accord.run.kind": kind,
                            "accord.thread_id": thread_id,
                            "accord.run_id": spec.run_id if spec else None}))
    if spec is not None:
        run.spec = replace(spec, trace=traceparent(span))
    seen = RunObservation(graph=graph, kind=kind, thread_id=thread_id,
                          run_id=spec.run_id if spec else None, span=span,
                          context=contextvars.copy_context())
    seen.context.run(_enter, seen)
    error: BaseException | None = None
    try:
        yield seen
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            seen.context.run(_ended, seen, error)
        finally:
            seen.calls.close()
            span.end()


def _ended(seen: RunObservation, error: BaseException | None) -> None:
    status = seen.status(error)
    seconds = time.perf_counter() - seen.started
    m = metrics()
    m.runs.labels(seen.graph, seen.kind, status).inc()
    m.run_seconds.labels(seen.graph, seen.kind).observe(seconds)
    if seen.handle is not None:
        note_run_end(seen.thread_id, seen.graph, status)
    span = seen.span
    span.set_attribute("accord.run.status", status)
    span.set_attribute("accord.tokens.input", seen.tokens_in)
    span.set_attribute("accord.tokens.output", seen.tokens_out)
    cause = None
    if status in ("failed", "refused"):
        cause = f"{type(error).__name__}: {error}"
        span.set_status(Status(StatusCode.ERROR, cause))
        if status == "failed":
            span.record_exception(error)
    # a failed run is an outcome (recorded with its cause), not a warning about accord
    log(logger, "run %s", status,
        event="run_ended", status=status, latency_ms=round(seconds * 1000, 3),
        tokens_in=seen.tokens_in, tokens_out=seen.tokens_out, error=cause)


__all__ = ["RunObservation", "current_run", "observe_run"]
