"""Fixtures for accord.checkpoints tests: every persistence test runs on memory, SQLite and
PostgreSQL (the last when `ACCORD_TEST_POSTGRES_URL` is set)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo


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


@pytest.fixture
def counter_builder():
    """A factory of tiny graphs: one node adds 1 to `count`."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class Counter(TypedDict):
        count: int

    def make() -> StateGraph:
        builder = StateGraph(Counter)
        builder.add_node("inc", lambda s: {"count": s["count"] + 1})
        builder.add_edge(START, "inc")
        builder.add_edge("inc", END)
        return builder

    return make


@pytest.fixture
def thread_id() -> str:
    """A thread id no other test uses."""
    return f"t-{uuid.uuid4().hex}"
