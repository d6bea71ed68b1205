"""Test set-up shared by every test.

- Real model calls are blocked (``accord.testing.pytest_plugin``): tests use the scripted model
  or a local OpenAI-compatible server.
- ``postgres_url``: the PostgreSQL URL from ``ACCORD_TEST_POSTGRES_URL``; without it the tests
  that need it skip with a reason, but under ``CI=true`` a missing or unreachable database
  fails them.
"""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

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


