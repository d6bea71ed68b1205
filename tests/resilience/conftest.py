"""Fixtures for accord.resilience tests: a fresh PostgreSQL schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose `search_path` is a fresh schema, dropped after the test."""
    schema = f"accord_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    options = f"{conninfo_to_dict(postgres_url).get('options', '')} -csearch_path={schema}"
    yield _as_url(make_conninfo(postgres_url, options=options.strip()))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
