"""Typed errors of accord.checkpoints: each one says what went wrong in one line."""

from __future__ import annotations

from accord.errors import AccordError


class CheckpointError(AccordError):
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


class ThreadBusy(CheckpointError):
    """Another writer holds the thread."""

    def __init__(self, thread_id: str, *, waited: float = 0.0) -> None:
        self.thread_id = thread_id
        self.waited = waited
        extra = f" after waiting {waited:g}s" if waited else ""
        super().__init__(f"thread {thread_id!r} is busy: another writer holds its lock{extra}")


class WriterFenced(CheckpointError):
    """This run lost its thread to another writer: its writes are refused, nothing forks."""

    def __init__(self, thread_id: str, epoch: int) -> None:
        self.thread_id = thread_id
        self.epoch = epoch
        super().__init__(
            f"thread {thread_id!r} was taken over by another writer; this run (epoch {epoch}) "
            "may not write to it any more"
        )


class ThreadNotFound(CheckpointError, LookupError):
    """No thread with that id in the database."""


class CheckpointNotFound(CheckpointError, LookupError):
    """No checkpoint with that id in the thread."""


class CorruptCheckpoint(CheckpointError):
    """A stored checkpoint cannot be read back."""

    def __init__(self, thread_id: str, checkpoint_id: str | None, reason: str, *,
                 in_history: bool = False) -> None:
        self.thread_id = thread_id
        self.checkpoint_id = checkpoint_id
        self.reason = reason
        where = (f"checkpoint {checkpoint_id}" if checkpoint_id else
                 "a checkpoint of its history" if in_history else "its latest checkpoint")
        then = ("accord history shows which; replay or fork from an intact one" if in_history
                else "earlier checkpoints are intact: see accord history, then replay or fork "
                "from one of them")
        super().__init__(f"thread {thread_id!r}: {where} cannot be read ({reason}); {then}")
