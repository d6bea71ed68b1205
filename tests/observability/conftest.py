"""Fixtures for the observability tests: an in-memory span exporter as accord's provider, a
real OTLP/HTTP receiver on loopback, and the `accord` CLI in a subprocess (the webhook and SMTP
receivers are in the root conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from accord.observability import use_provider


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """accord's spans of this test, finished ones in ``spans.get_finished_spans()``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = use_provider(provider)
    try:
        yield exporter
    finally:
        use_provider(previous)
        provider.shutdown()


@dataclass
class ReceivedSpan:
    """One span as an OTLP export request carried it."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    service: str


@dataclass
class OtlpReceiver:
    """A real OTLP/HTTP trace receiver on loopback (protobuf export requests)."""

    endpoint: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = OtlpReceiver(endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received = []
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        received.append(ReceivedSpan(
                            name=span.name, trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(), parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            links=[(ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links],
                            service=str(resource.get("service.name"))))
            with lock:
                receiver.spans.extend(received)
                receiver.requests += 1
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            receiver.arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def accord_cli(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`accord_cli(*args, env={...})`: the CLI in a subprocess, its defaults under tmp_path."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ACCORD_"))}
    base.update({
        "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"),
        "ACCORD_DB_URL": f"sqlite:///{tmp_path}/accord.db",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    })

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-P", "-m", "accord.cli.main", *args],
            cwd=tmp_path, env={**base, **(env or {})}, capture_output=True, text=True,
            timeout=180, check=False,
        )

    return run


@pytest.fixture
def quiet_notifier() -> Iterator[None]:
    """Notifications and alerts configured by the test only; reset afterwards."""
    from accord.observability import alerts, notify

    notify.configure(None, drain=0.5)
    alerts.configure_alerts(None)
    try:
        yield
    finally:
        notify.configure(None, drain=0.5)
        alerts.configure_alerts(None)
