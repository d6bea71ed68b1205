"""Test set-up shared by every test.

- Real model calls are blocked (``accord.testing.pytest_plugin``): tests use the scripted model
  or a local OpenAI-compatible server.
- ``db_url`` (memory, SQLite, PostgreSQL), ``durable_url`` (SQLite, PostgreSQL), ``pg_schema_url``:
  a fresh database per test, on PostgreSQL a schema of its own;
- ``postgres_url``: the PostgreSQL URL from ``ACCORD_TEST_POSTGRES_URL``; without it the tests
  that need it skip with a reason, but under ``CI=true`` a missing or unreachable database
  fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
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
