"""Servers for the serving tests: `langgraph dev` and `accord serve` as real subprocesses, the
console in this process (uvicorn), Chromium through Playwright.

The server's working directory is a temporary folder holding symlinks to `langgraph.json` and
the folders it names, so the real config is served while the in-memory server's own records
(`.langgraph_api/`) land in the temporary folder instead of the repository.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "langgraph.json"
LANGGRAPH = Path(sys.executable).parent / "langgraph"
START_TIMEOUT = 90.0
"""Seconds to wait for `GET /ok`; the first start on a small machine is slow."""
STOP_TIMEOUT = 20.0
"""Seconds between SIGTERM and SIGKILL when stopping the server."""

OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
}
"""What `langgraph dev` needs to start without network access."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class DevServer:
    """A running `langgraph dev`."""

    url: str
    """Base URL, `http://127.0.0.1:<port>`."""
    workdir: Path
    """The server's working directory (holds `.langgraph_api/`)."""
    log: Path
    """The server's combined stdout and stderr."""

    def log_tail(self, lines: int = 80) -> str:
        text = _ANSI.sub("", self.log.read_text(errors="replace")) if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_paths() -> set[str]:
    """The top-level files and folders `langgraph.json` refers to."""
    config = json.loads(CONFIG.read_text())
    paths = [spec.split(":", 1)[0] for spec in config["graphs"].values()]
    if config.get("checkpointer", {}).get("path"):
        paths.append(config["checkpointer"]["path"].split(":", 1)[0])
    if config.get("http", {}).get("app"):
        paths.append(config["http"]["app"].split(":", 1)[0])
    return {Path(p).parts[0] for p in paths}  # Path drops a leading "./"


def group_alive(pgid: int) -> list[str]:
    """Processes of group `pgid` that are not zombies, as `pid state cmd` lines."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            alive.append(f"{stat.parent.name} {state}")
    return alive


@contextmanager
def dev_server(workdir: Path, env: dict[str, str]) -> Iterator[DevServer]:
    """Start `langgraph dev` in `workdir` with `env` added; stop its whole process group on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in {CONFIG.name, *served_paths()}:
        link = workdir / name
        if not link.exists():
            link.symlink_to(REPO / name)
    port = free_port()
    server = DevServer(url=f"http://127.0.0.1:{port}", workdir=workdir, log=workdir / "server.log")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LANGSMITH_"))}
    full_env.update(OFFLINE_ENV, **env)
    # --no-reload: other people's edits to the repository must not restart the server mid-test.
    command = [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
               "--port", str(port), "--config", CONFIG.name]
    with server.log.open("ab") as log:
        proc = subprocess.Popen(command, cwd=workdir, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, server)
        yield server
    finally:
        _stop(proc)
        left = group_alive(proc.pid)
        assert not left, f"langgraph dev left processes behind: {left}"


def _wait_ready(proc: subprocess.Popen, server: DevServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/ok", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"langgraph dev not ready after {START_TIMEOUT:.0f}s:\n{server.log_tail()}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (a graceful shutdown closes the saver), SIGKILL if it hangs."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.5)


@pytest.fixture
def serve():
    """`serve(workdir, env)`: a context manager running `langgraph dev` (see `dev_server`)."""
    return dev_server


@dataclass
class ConsoleServer:
    """accord's app (``build_app``: /metrics and /console) served by uvicorn in this process."""

    url: str
    """Base URL of the console, ``http://127.0.0.1:<port>/console``."""
    db_url: str
    """The database the app (and the tests' runs) use."""


CONSOLE_USERS = {"alice": "approver", "bob": "approver", "vera": "viewer", "adam": "admin"}
CONSOLE_PASSWORD = "password-1"


@pytest.fixture
def console_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsoleServer]:
    """A console on a fresh SQLite database and support data, with one user per role."""
    import threading

    import uvicorn

    from accord.server.app import build_app
    from accord.server.auth import Role
    from accord.server.console.store import ConsoleStore

    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))
    monkeypatch.delenv("ACCORD_CONSOLE_SECRET", raising=False)
    db_url = f"sqlite:///{tmp_path}/accord.db"
    store = ConsoleStore(db_url)
    for name, role in CONSOLE_USERS.items():
        store.add_user(name, Role.named(role), CONSOLE_PASSWORD)
    store.close()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(db_url, refresh=3600), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield ConsoleServer(f"http://127.0.0.1:{port}/console", db_url)
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)


# `accord serve` as a subprocess ------------------------------------------------------------

ACCORD = Path(sys.executable).parent / "accord"


@dataclass
class Served:
    """A running `accord serve`."""

    url: str
    """Base URL, ``http://127.0.0.1:<port>``."""
    db_url: str
    """Its database."""
    log: Path
    """Its combined stdout and stderr."""


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an `accord serve` under ``tmp_path``: no model key, no inherited
    ``ACCORD_*`` setting, the support example's database in ``tmp_path``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ACCORD_"))}
    full.update(ACCORD_SUPPORT_DB=str(tmp_path / "support.db"), **extra)
    return full


@contextmanager
def accord_serve(tmp_path: Path, port: int | None = None, **extra: str) -> Iterator[Served]:
    """`accord serve` on ``port`` (default a free one) and ``sqlite:///tmp_path/accord.db``,
    ``extra`` added to its environment; ready once ``/metrics`` answers; stopped on exit."""
    port = port or free_port()
    db_url = f"sqlite:///{tmp_path}/accord.db"
    served = Served(f"http://127.0.0.1:{port}", db_url, tmp_path / "serve.log")
    with served.log.open("wb") as log:
        proc = subprocess.Popen([str(ACCORD), "serve", "--db", db_url, "--port", str(port)],
                                cwd=tmp_path, env=serve_env(tmp_path, **extra), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, served.log.read_text()
            try:
                if httpx.get(f"{served.url}/metrics", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "accord serve did not start"
            time.sleep(0.05)
        yield served
    finally:
        _stop(proc)


@pytest.fixture
def serve_accord():
    """`serve_accord(tmp_path, **env)`: a context manager running `accord serve`."""
    return accord_serve


# Chromium through Playwright ---------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def browser():
    """Debian's chromium driven by Playwright (skipped without it; failed under CI=true)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: browser tests need Debian's chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def browser_sign_in(browser, base: str, name: str, password: str = CONSOLE_PASSWORD):
    """A new page of ``browser`` signed in to the console at ``base`` (``.../console``)."""
    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    page.goto(f"{base}/signin")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/inbox")
    return page
