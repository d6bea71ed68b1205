"""Attempts: every call an agent or a model made for a task, the failed ones with their error.

An agent's hop opens an :class:`AttemptLog` (``with attempts(agent=..., model=...)``); the
retry layers write into the log that is current (`ProviderRetryMiddleware` for each model call,
the agent node for a rule-based agent's own retries), so the attempts of one hop are known
without threading a collector through langchain. The agent node turns them into
``attempt_failed`` audit events and the task's hop record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from accord.resilience.transient import is_transient


def describe_error(error: BaseException) -> str:
    """``Type: first line`` of an error, as accord records it."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@dataclass(frozen=True)
class Attempt:
    """One call of an agent (rule-based) or of its model."""

    agent: str
    """The agent whose call it was."""
    model: str | None
    """The model called (``provider:model``); None for a rule-based agent's own call."""
    number: int
    """1 for the first call, 2 for its first retry, ..."""
    error: str | None = None
    """Why it failed (``Type: message``); None when it succeeded."""
    transient: bool = False
    """Whether the failure was transient (a timeout, 429, 5xx, a dropped connection)."""
    retried: bool = False
    """Whether another attempt followed."""
    wait: float | None = None
    """Seconds waited before the next attempt (``Retry-After`` or the backoff), when known."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "model": self.model, "attempt": self.number,
                "error": self.error, "transient": self.transient, "retried": self.retried,
                "wait": self.wait}


@dataclass
class AttemptLog:
    """The attempts of one hop of a task."""

    agent: str
    """The agent of the hop."""
    model: str | None = None
    """Its model, for a model call's attempts."""
    entries: list[Attempt] = field(default_factory=list)
    """Every attempt, in order."""

    def ok(self, number: int, *, model: str | None = None) -> None:
        self.entries.append(Attempt(self.agent, model or self.model, number))

    def failed(self, number: int, error: BaseException, *, retried: bool,
               model: str | None = None, wait: float | None = None) -> None:
        self.entries.append(Attempt(self.agent, model or self.model, number,
                                    describe_error(error), is_transient(error), retried, wait))

    @property
    def calls(self) -> int:
        return len(self.entries)

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.entries if not a.ok]


_CURRENT: ContextVar[AttemptLog | None] = ContextVar("accord_attempts", default=None)


@contextmanager
def attempts(agent: str, model: str | None = None) -> Iterator[AttemptLog]:
    """Collect the attempts made inside the block (child tasks included)."""
    log = AttemptLog(agent, model)
    token = _CURRENT.set(log)
    try:
        yield log
    finally:
        _CURRENT.reset(token)


def current_attempts() -> AttemptLog | None:
    """The log of the hop in progress, if any."""
    return _CURRENT.get()


__all__ = ["Attempt", "AttemptLog", "attempts", "current_attempts", "describe_error"]
