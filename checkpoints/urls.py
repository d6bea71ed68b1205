"""Database URLs: resolve the configured one and parse it into a typed value."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from accord.checkpoints.errors import UnknownScheme

ENV_VAR = "ACCORD_DB_URL"
"""Environment variable read when no URL is given."""

DEFAULT_URL = "sqlite:///.accord/accord.db"
"""The embedded default: a SQLite file under `.accord/` in the working directory."""


class Backend(StrEnum):
    """The kinds of database accord can open."""

    MEMORY = "memory"
    SQLITE = "sqlite"
    POSTGRES = "postgres"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL."""

    url: str
    """The URL as given (may hold a password: never print it, print `display`)."""
    backend: Backend
    """Which kind of database it names."""
    path: Path | None = None
    """The SQLite file, for `sqlite://` URLs."""

    @property
    def display(self) -> str:
        """A one-line description without any password, for messages."""
        if self.backend is Backend.SQLITE:
            return f"sqlite file {self.path}"
        if self.backend is Backend.MEMORY:
            return "memory://"
        try:
            info = conninfo_to_dict(self.url)
        except Exception:  # noqa: BLE001 - a malformed URL still gets a message
            return "postgresql (unparseable URL)"
        host = info.get("host") or "localhost"
        port = info.get("port") or "5432"
        user = f"{info['user']}@" if info.get("user") else ""
        return f"postgresql://{user}{host}:{port}/{info.get('dbname') or ''}"


def resolve_url(url: str | None = None) -> str:
    """The URL to use: `url`, else `$ACCORD_DB_URL`, else `sqlite:///.accord/accord.db`.

    For a SQLite URL the parent folder of the file is created.
    """
    chosen = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    parsed = parse_url(chosen)
    if parsed.path is not None:
        parsed.path.parent.mkdir(parents=True, exist_ok=True)
    return chosen


def parse_url(url: str) -> DatabaseURL:
    """Parse `url`; raise `UnknownScheme` for anything but memory, sqlite and postgres."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise UnknownScheme(url)
    if scheme == "memory":
        return DatabaseURL(url=url, backend=Backend.MEMORY)
    if scheme == "sqlite":
        # sqlite:///relative/path -> "relative/path"; sqlite:////abs/path -> "/abs/path"
        if not rest.startswith("/") or len(rest) < 2:
            raise UnknownScheme(url, problem="a sqlite URL needs a file path")
        return DatabaseURL(url=url, backend=Backend.SQLITE, path=Path(rest[1:]).absolute())
    if scheme in ("postgresql", "postgres"):
        return DatabaseURL(url=url, backend=Backend.POSTGRES)
    raise UnknownScheme(url)
