"""Fixtures for the observability tests: an in-memory span exporter as accord's provider and
the `accord` CLI in a subprocess (the OTLP, webhook and SMTP receivers are in the root
conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
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
