"""Durability harness: real `accord` CLI processes (forked by `zygote.py`), each in a sandbox.

A *sandbox* is one fresh checkpoint database (SQLite file, or a fresh PostgreSQL schema) plus
one fresh copy of the sample company's database, and a log file that every process of the
sandbox appends its crash-point hits to (see `crashpoints.py`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from accord.testing.pytest_plugin import API_KEY_ENV_VARS

HERE = Path(__file__).parent
SIGKILLED = -9
"""Exit code of a child killed by SIGKILL, as `os.waitstatus_to_exitcode` reports it."""


class Zygote:
    """Client of the fork server: runs `accord` argv lists as real processes."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in API_KEY_ENV_VARS and not k.startswith("ACCORD_")}
        env["COLUMNS"] = "200"
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(HERE / "zygote.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        self.lock = threading.Lock()

    def run(self, jobs: list[dict[str, Any]], *, together: bool = False) -> list[int]:
        """Fork one process per job (released together at a barrier if asked); exit codes."""
        with self.lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps({"jobs": jobs, "together": together}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died (exit {self.proc.poll()})")
        return json.loads(line)["codes"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Result:
    """One finished `accord` process."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Sandbox:
    """A checkpoint database and a sample-company database that only one scenario uses."""

    def __init__(self, zygote: Zygote, root: Path, url: str) -> None:
        self.zygote = zygote
        self.root = root
        self.url = url
        self.support_db = root / "support.db"
        self.log = root / "hits.log"
        self.runs = 0

    def job(self, *argv: str, crash_at: str | None = None, support: str | None = None) -> dict[str, Any]:
        """One `accord` process; `support` names another sample-company database file."""
        self.runs += 1
        support_db = self.root / support if support else self.support_db
        return {
            "argv": [*argv, "--db", self.url],
            "env": {"ACCORD_SUPPORT_DB": str(support_db)},
            "crash_at": crash_at,
            "log": str(self.log),
            "out": str(self.root / f"{self.runs:03d}.out"),
            "err": str(self.root / f"{self.runs:03d}.err"),
        }

    def read(self, job: dict[str, Any], code: int) -> Result:
        return Result(code, Path(job["out"]).read_text(), Path(job["err"]).read_text())

    def accord(self, *argv: str, crash_at: str | None = None) -> Result:
        """Run ``accord ARGV --db URL`` in a new process."""
        job = self.job(*argv, crash_at=crash_at)
        return self.read(job, self.zygote.run([job])[0])

    def batch(self, jobs: list[dict[str, Any]], *, together: bool = False) -> list[Result]:
        """Run the jobs as concurrent processes (released at one instant if `together`)."""
        codes = self.zygote.run(jobs, together=together)
        return [self.read(j, c) for j, c in zip(jobs, codes, strict=True)]

    # what the processes left behind ---------------------------------------------------------
    def show(self, thread: str) -> dict[str, Any]:
        result = self.accord("show", thread, "--json")
        assert result.code == 0, result.err
        return result.json()

    def index_status(self, thread: str) -> str | None:
        result = self.accord("threads", "--json", "--limit", "1000")
        assert result.code == 0, result.err
        return next((row["status"] for row in result.json() if row["thread_id"] == thread), None)

    def rows(self, table: str, support: str | None = None) -> list[dict[str, Any]]:
        with closing(sqlite3.connect(self.root / support if support else self.support_db)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]

    def node_runs(self) -> Counter[str]:
        """How many times each graph node was entered, over every process of the sandbox."""
        runs: Counter[str] = Counter()
        if self.log.exists():
            for line in self.log.read_text().splitlines():
                _, point, _ = line.split(" ", 2)
                if point.startswith("node."):
                    runs[point.removeprefix("node.")] += 1
        return runs

    def killed_at(self) -> list[str]:
        if not self.log.exists():
            return []
        return [line.split(" ", 2)[2] for line in self.log.read_text().splitlines() if " KILLED " in line]


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


class Sandboxes:
    """Makes sandboxes on SQLite or PostgreSQL; drops the PostgreSQL schemas at the end."""

    def __init__(self, zygote: Zygote, root: Path) -> None:
        self.zygote = zygote
        self.root = root
        self.schemas: list[tuple[str, str]] = []

    def new(self, backend: str, postgres_url: str | None = None) -> Sandbox:
        root = self.root / f"{backend}-{uuid.uuid4().hex[:10]}"
        root.mkdir()
        if backend == "sqlite":
            return Sandbox(self.zygote, root, f"sqlite:///{root}/accord.db")
        import psycopg

        assert postgres_url is not None
        schema = f"accord_dur_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self.schemas.append((postgres_url, schema))
        return Sandbox(self.zygote, root, _with_search_path(postgres_url, schema))

    def close(self) -> None:
        if not self.schemas:
            return
        import psycopg

        with psycopg.connect(self.schemas[0][0], autocommit=True) as conn:
            for _, schema in self.schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    server = Zygote()
    yield server
    server.close()


@pytest.fixture(scope="session")
def sandboxes(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    made = Sandboxes(zygote, tmp_path_factory.mktemp("durability"))
    yield made
    made.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each durability test runs on SQLite and on PostgreSQL (when configured)."""
    return request.param


@pytest.fixture
def new_sandbox(backend: str, sandboxes: Sandboxes, request: pytest.FixtureRequest) -> Any:
    """Makes fresh sandboxes on this test's backend."""
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    return lambda: sandboxes.new(backend, url)
