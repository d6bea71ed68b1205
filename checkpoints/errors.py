"""Typed errors of accord.checkpoints: each one says what went wrong in one line."""

from __future__ import annotations


class CheckpointError(Exception):
    """Base class of every error accord.checkpoints raises on purpose."""


class UnknownScheme(CheckpointError, ValueError):
    """The database URL has a scheme accord cannot open."""

    def __init__(self, url: str, *, problem: str | None = None) -> None:
        self.scheme = url.split("://", 1)[0] if "://" in url else url
        super().__init__(
            (problem or f"unknown database URL scheme {self.scheme!r}")
            + ": use memory://, sqlite:///relative/path, sqlite:////absolute/path"
            " or postgresql://user@host/db"
        )


class DatabaseUnreachable(CheckpointError, ConnectionError):
    """The database could not be reached; the message names host and database, never a password."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"cannot reach database {target}: {reason}")


class UnsupportedOption(CheckpointError, ValueError):
    """An option was asked of a backend that does not support it."""


class ThreadBusy(CheckpointError, RuntimeError):
    """Another writer holds the thread's lock."""

    def __init__(self, thread_id: str, *, waited: float = 0.0) -> None:
        self.thread_id = thread_id
        self.waited = waited
        extra = f" after waiting {waited:g}s" if waited else ""
        super().__init__(f"thread {thread_id!r} is busy: another writer holds its lock{extra}")
