"""Test set-up shared by every test.

- Real model calls are blocked (``accord.testing.pytest_plugin``): tests use the scripted model
  or a local OpenAI-compatible server.
- ``db_url`` (memory, SQLite, PostgreSQL), ``durable_url`` (SQLite, PostgreSQL), ``pg_schema_url``:
  a fresh database per test, on PostgreSQL a schema of its own;
- ``postgres_url``: the PostgreSQL URL from ``ACCORD_TEST_POSTGRES_URL``; without it the tests
  that need it skip with a reason, but under ``CI=true`` a missing or unreachable database
  fails them;
- ``receiver`` (a webhook on loopback) and ``smtp`` (an aiosmtpd server on loopback): what
  notifications reach; ``otlp_receiver`` (OTLP/HTTP on loopback): the spans processes export.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from psycopg.conninfo import conninfo_to_dict, make_conninfo

pytest_plugins = ["accord.testing.pytest_plugin"]

POSTGRES_ENV = "ACCORD_TEST_POSTGRES_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL URL; skips without one, but under `CI=true` a missing URL or an
    unreachable database fails the tests instead of skipping them."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        reason = f"{POSTGRES_ENV} is not set"
        if _in_ci():
            pytest.fail(f"CI=true but {reason}: PostgreSQL tests must run in CI", pytrace=False)
        pytest.skip(f"{reason}: PostgreSQL tests skipped")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        info = conninfo_to_dict(url)
        where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        reason = f"PostgreSQL at {where} unreachable: {str(exc).strip().splitlines()[0]}"
        if _in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return url


@contextmanager
def _fresh_schema(postgres_url: str) -> Iterator[str]:
    """A URL whose `search_path` is a fresh schema, dropped afterwards."""
    schema = f"accord_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    options = f"{conninfo_to_dict(postgres_url).get('options', '')} -csearch_path={schema}"
    try:
        yield _as_url(make_conninfo(postgres_url, options=options.strip()))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose `search_path` is a fresh schema, dropped after the test."""
    with _fresh_schema(postgres_url) as url:
        yield url


@pytest.fixture
def pg_schema_url_2(postgres_url: str) -> Iterator[str]:
    """A second fresh schema on the same database."""
    with _fresh_schema(postgres_url) as url:
        yield url


def _as_url(conninfo: str) -> str:
    """psycopg's `make_conninfo` returns `key=value` text; accord wants a postgresql:// URL."""
    from urllib.parse import quote

    info = conninfo_to_dict(conninfo)
    user = quote(info.pop("user", ""), safe="")
    password = info.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = info.pop("host", "localhost")
    port = info.pop("port", "5432")
    db = info.pop("dbname", "")
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in info.items())
    return f"postgresql://{auth}{host}:{port}/{db}" + (f"?{query}" if query else "")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh database of each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh database of each backend that outlives a process."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    return request.getfixturevalue("pg_schema_url")


# receivers of notifications: a webhook and an SMTP server on loopback -----------------------

@dataclass
class Receiver:
    """A webhook receiver on loopback: the JSON bodies it accepted, failing the first ``fail``."""

    url: str
    fail: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, test: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> list:
        """The bodies once ``test(bodies)`` holds (fails after ``timeout`` seconds)."""
        with self.changed:
            assert self.changed.wait_for(lambda: test(self.bodies), timeout), self.bodies
            return list(self.bodies)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on a free loopback port that takes Slack-compatible JSON."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got = holder["r"]
            with got.changed:
                got.attempts += 1
                failing = got.attempts <= got.fail
                if not failing:
                    got.bodies.append(json.loads(body))
                got.changed.notify_all()
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()


class SMTPSink:
    """What an aiosmtpd server received: (recipients, message) pairs."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self.changed:
            self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, count: int = 1, timeout: float = 30) -> list[Any]:
        """The messages once ``count`` arrived (fails after ``timeout`` seconds)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.messages) >= count, timeout), \
                self.messages
            return list(self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[SMTPSink, str]]:
    """A real SMTP server (aiosmtpd) on a free loopback port: the sink and its smtp:// URL."""
    from aiosmtpd.controller import Controller

    sink = SMTPSink()
    with socket.socket() as probe:  # a free port (aiosmtpd checks the port it was given)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


# a receiver of traces: OTLP/HTTP on loopback --------------------------------------------

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
