"""Fixtures for the guardrail tests: the sample support database and the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from accord.graphs.support import SupportDB


@pytest.fixture
def support_db(tmp_path) -> SupportDB:
    """A fresh copy of the support example's SQLite database."""
    return SupportDB(tmp_path / "support.db")


@pytest.fixture
def accord(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the `accord` CLI in a real subprocess, with the sample DB under tmp_path."""
    base = {**os.environ, "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"),
           "ACCORD_DB_URL": f"sqlite:///{tmp_path}/default.db", "COLUMNS": "200", "NO_COLOR": "1"}

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args], cwd=tmp_path,
                              env={**base, **(env or {})}, capture_output=True, text=True,
                              timeout=120, check=False)

    return run


@pytest.fixture
def pg_schema_url(postgres_url: str):
    """A PostgreSQL URL whose `search_path` is a fresh schema, dropped after the test."""
    import uuid
    from urllib.parse import quote

    import psycopg

    schema = f"accord_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
