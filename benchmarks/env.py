"""Where a benchmark run happens: sizes (full or quick), scratch databases, progress, memory."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_ENVS = ("ACCORD_BENCH_POSTGRES_URL", "ACCORD_TEST_POSTGRES_URL")


@dataclass(frozen=True)
class Sizes:
    """How big each section is."""

    repeats: int
    overhead_requests: int
    workload_requests: int
    workload_latency: float
    workload_repeats: int
    concurrency: tuple[int, ...]
    throughput_seconds: float
    throughput_repeats: int
    accounting_requests: int
    """Requests per commit-counting window of section 3 (fresh threads, then follow-ups)."""
    accounting_concurrency: int
    """Concurrent requests in those windows (enough to keep the process busy)."""
    pgbench_scale: int
    resumes: int
    waiting_threads: int
    storage_requests: int
    growth: tuple[int, ...]
    """Requests one thread has received at each point of section 6's growth curve."""
    pgbench_seconds: int
    scale_workers: tuple[int, ...]
    """Worker processes of each configuration of section 8 (besides the in-process server)."""
    scale_concurrency: int
    """Requests section 8's client keeps in flight."""
    scale_warm: float
    scale_seconds: float
    scale_repeats: int
    locust_requests: int
    """Refunds section 9's Locust run makes (each approved)."""
    locust_users: int
    locust_seconds: int
    """The Locust run's time bound."""


FULL = Sizes(
    repeats=9, overhead_requests=30, workload_requests=200, workload_latency=0.01,
    workload_repeats=3, concurrency=(1, 8, 32, 128, 256), throughput_seconds=5.0,
    throughput_repeats=3, accounting_requests=120, accounting_concurrency=32, pgbench_scale=10,
    resumes=40, waiting_threads=10_000, storage_requests=200, growth=(1, 10, 50),
    pgbench_seconds=5, scale_workers=(1, 2, 4), scale_concurrency=256, scale_warm=8.0,
    scale_seconds=20.0, scale_repeats=3, locust_requests=5000, locust_users=64,
    locust_seconds=1200,
)
QUICK = Sizes(
    repeats=2, overhead_requests=4, workload_requests=10, workload_latency=0.0,
    workload_repeats=1, concurrency=(1, 8), throughput_seconds=1.0, throughput_repeats=1,
    accounting_requests=8, accounting_concurrency=4, pgbench_scale=1, resumes=4,
    waiting_threads=100, storage_requests=10, growth=(1, 3, 6), pgbench_seconds=1,
    scale_workers=(1, 2), scale_concurrency=8, scale_warm=2.0, scale_seconds=2.0,
    scale_repeats=1, locust_requests=12, locust_users=4, locust_seconds=120,
)


def rss_bytes() -> int:
    """Resident memory of this process (``VmRSS`` from ``/proc/self/status``)."""
    text = Path("/proc/self/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


def postgres_admin_url(quick: bool, explicit: str | None) -> tuple[str | None, str]:
    """The PostgreSQL to use and a note: explicit, else the env vars, else the default (full)."""
    candidates = [explicit] if explicit else [os.environ.get(e) for e in POSTGRES_ENVS]
    candidates = [c for c in candidates if c]
    if not candidates and not quick:
        candidates = [DEFAULT_POSTGRES]
    for url in candidates:
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url, f"PostgreSQL at {_display(url)}"
        except psycopg.Error as exc:
            return None, f"no PostgreSQL ({_display(url)} unreachable: {str(exc).splitlines()[0]})"
    return None, "no PostgreSQL (set ACCORD_BENCH_POSTGRES_URL)"


def _display(url: str) -> str:
    info = conninfo_to_dict(url)
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


@dataclass
class BenchEnv:
    """Scratch space of one run: a temp folder and scratch PostgreSQL databases."""

    sizes: Sizes
    quick: bool
    postgres: str | None
    postgres_note: str
    out: Path
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="accord-bench-")))
    _databases: list[str] = field(default_factory=list)

    @property
    def cores(self) -> int:
        """CPU cores this process may run on."""
        return len(os.sched_getaffinity(0))

    @property
    def plots(self) -> Path:
        path = self.out / "plots"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.tmp / (name + '-' + uuid.uuid4().hex[:6] + '.db')}"

    def sqlite_path(self, url: str) -> Path:
        return Path(url.removeprefix("sqlite:///"))

    def postgres_url(self, name: str) -> str:
        """A fresh scratch database (dropped by ``close``)."""
        assert self.postgres is not None
        dbname = f"accord_bench_{os.getpid()}_{name}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        self._databases.append(dbname)
        conninfo = make_conninfo(self.postgres, dbname=dbname)
        info = conninfo_to_dict(conninfo)
        user = info.get("user", "")
        auth = f"{user}:{info['password']}@" if info.get("password") else (f"{user}@" if user else "")
        return f"postgresql://{auth}{info.get('host', 'localhost')}:{info.get('port', 5432)}/{dbname}"

    def drop(self, url: str) -> None:
        dbname = conninfo_to_dict(url)["dbname"]
        if dbname in self._databases and self.postgres is not None:
            with psycopg.connect(self.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            self._databases.remove(dbname)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        for dbname in list(self._databases):
            try:
                with psycopg.connect(self.postgres, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            except psycopg.Error:
                pass
            self._databases.remove(dbname)

    @contextmanager
    def databases(self) -> Iterator[list[tuple[str, str]]]:
        """``[(label, url)]`` of fresh SQLite and (when available) PostgreSQL databases."""
        made = [("SQLite", self.sqlite_url("db"))]
        if self.postgres:
            made.append(("PostgreSQL", self.postgres_url("db")))
        try:
            yield made
        finally:
            for label, url in made:
                if label == "PostgreSQL":
                    self.drop(url)
