"""Fixtures for the governance tests (versions, canaries, flags, retirement): databases of
every backend and the CLI in a subprocess, run from a folder holding ``flow.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

FLOW = Path(__file__).with_name("flow.py")


def _as_url(conninfo: str) -> str:
    info = conninfo_to_dict(conninfo)
    user = quote(info.pop("user", ""), safe="")
    password = info.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host, port, db = info.pop("host", "localhost"), info.pop("port", "5432"), info.pop("dbname", "")
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in info.items())
    return f"postgresql://{auth}{host}:{port}/{db}" + (f"?{query}" if query else "")


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
def accord(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The `accord` CLI in a real subprocess, in a folder with ``flow.py``."""
    shutil.copy(FLOW, tmp_path / "flow.py")
    env = {**os.environ, "ACCORD_DB_URL": f"sqlite:///{tmp_path}/accord.db",
           "ACCORD_SUPPORT_DB": str(tmp_path / "support.db"), "COLUMNS": "200", "NO_COLOR": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-P", "-m", "accord.cli.main", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    return run
