"""Spans: where accord's tracer comes from, and W3C trace context in and out.

The tracer is the application's when it installed an OpenTelemetry SDK ``TracerProvider``
globally (its exporters, its sampler); otherwise accord builds one for the process from the
environment:

- ``ACCORD_OTEL_EXPORTER=otlp``: OTLP over HTTP/protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT``
  (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), batched in a background thread: an unreachable
  collector costs the exporter's retries, never a run;
- ``ACCORD_OTEL_EXPORTER=console``: each span as JSON on stderr (stdout stays the command's);
- ``ACCORD_OTEL_EXPORTER=none`` (the default when no OTLP endpoint is set): spans still get ids
  (log lines carry them, the thread index stores the run's trace context) but go nowhere, and
  nothing touches the network. Unset with an OTLP endpoint set means ``otlp``.

``traceparent()`` and ``context_of()`` carry a span across processes in the W3C format, which
is how a run that resumes a thread after an approval joins the trace of the run that paused it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from accord.errors import AccordError

logger = logging.getLogger(__name__)

SCOPE = "accord"
"""The instrumentation scope of accord's spans."""

EXPORTER_ENV = "ACCORD_OTEL_EXPORTER"
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class TraceExporter(StrEnum):
    """Where accord's own tracer provider sends spans."""

    OTLP = "otlp"
    CONSOLE = "console"
    NONE = "none"


class TracingConfigError(AccordError):
    """``ACCORD_OTEL_EXPORTER`` names no exporter accord knows."""


def exporter_from(env: Mapping[str, str] | None = None) -> TraceExporter:
    """The exporter the environment asks for (see the module docstring)."""
    env = os.environ if env is None else env
    raw = (env.get(EXPORTER_ENV) or "").strip().lower()
    if not raw:
        return TraceExporter.OTLP if any(env.get(k) for k in ENDPOINT_ENVS) else TraceExporter.NONE
    try:
        return TraceExporter(raw)
    except ValueError:
        raise TracingConfigError(
            f"{EXPORTER_ENV}={raw!r} is not one of otlp, console, none") from None


def build_provider(exporter: TraceExporter, *, service: str = "accord") -> TracerProvider:
    """An SDK provider sending spans to ``exporter`` (nothing is connected before a span ends)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is TraceExporter.OTLP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter is TraceExporter.CONSOLE:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    return provider


class _Providers:
    """accord's own provider for the process, built on first use (tests may install one)."""

    def __init__(self) -> None:
        self.own: TracerProvider | None = None
        self.lock = threading.Lock()
        self._tracer: tuple[Any, trace.Tracer] | None = None

    def tracer(self) -> trace.Tracer:
        found = trace.get_tracer_provider()
        if not isinstance(found, TracerProvider):  # no SDK provider of the application's
            found = self.own
            if found is None:
                with self.lock:
                    if self.own is None:
                        service = os.environ.get("OTEL_SERVICE_NAME") or "accord"
                        self.own = build_provider(exporter_from(), service=service)
                    found = self.own
        cached = self._tracer
        if cached is None or cached[0] is not found:  # a tracer costs a scope comparison
            cached = (found, found.get_tracer(SCOPE))
            self._tracer = cached
        return cached[1]


_PROVIDERS = _Providers()


def tracer() -> trace.Tracer:
    """accord's tracer (the application's provider first, else accord's own)."""
    return _PROVIDERS.tracer()


def use_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Make ``provider`` accord's own (None: build it again from the environment on next use);
    returns the one it replaces. An application's global SDK provider still comes first."""
    with _PROVIDERS.lock:
        previous, _PROVIDERS.own = _PROVIDERS.own, provider
    return previous


def flush(timeout_millis: int = 5000) -> None:
    """Export what accord's own provider still holds (a short-lived command before it exits)."""
    own = _PROVIDERS.own
    if own is not None:
        own.force_flush(timeout_millis)


_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent(span: trace.Span | None = None) -> str | None:
    """The W3C ``traceparent`` of ``span`` (default: the current one), or None if invalid."""
    carrier: dict[str, str] = {}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier.get("traceparent")


def context_of(value: str | None) -> Context | None:
    """The span context a stored ``traceparent`` names, as a parent context (None: unusable)."""
    if not value:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": value})
    span = trace.get_current_span(ctx)
    return ctx if span.get_span_context().is_valid else None


def link_to(value: str | None) -> list[trace.Link]:
    """A link to the span a stored ``traceparent`` names (empty when there is none)."""
    ctx = context_of(value)
    return [trace.Link(trace.get_current_span(ctx).get_span_context())] if ctx else []


def attrs(**values: Any) -> dict[str, Any]:
    """Span attributes: None dropped, other non-primitive values as text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


__all__ = [
    "SCOPE",
    "TraceExporter",
    "TracingConfigError",
    "attrs",
    "build_provider",
    "context_of",
    "exporter_from",
    "flush",
    "link_to",
    "traceparent",
    "tracer",
    "use_provider",
]
