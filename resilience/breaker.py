"""Circuit breakers per agent and per model provider, shared by every process on one database.

closed -> open after ``failures`` failures within ``window`` seconds -> half-open after
``cool_down`` seconds, when exactly one caller is let through as the probe -> closed when the
probe succeeds, open again when it fails. While a breaker is open its agent's task goes straight
to the fallback and no call is made.

Why a small state machine in SQL rather than pybreaker, purgatory or aiobreaker: the state must
be shared by a fleet of workers on accord's own database (SQLite or PostgreSQL), and each
transition (count a failure, trip, grant the single half-open probe) must be atomic across
processes. pybreaker's shared storage is Redis only and its state changes are read-modify-write
from the client; purgatory's SQL backend is async-SQLAlchemy only (a new stack beside psycopg);
aiobreaker keeps state in memory. One row per breaker, changed in one transaction of the saver
(``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), is less code than any
adapter and needs nothing new. ``memory://`` keeps the same machine in process memory.

The clock is passed in (seconds, ``time.time`` by default), so tests move time without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accord.errors import AccordError

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``), injectable."""


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""
    OPEN = "open"
    """No call is made; the fallback answers."""
    HALF_OPEN = "half_open"
    """One probe call is in flight; everyone else still takes the fallback."""


class BreakerSpec(BaseModel):
    """When a breaker trips and when it tries again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failures: int = Field(5, ge=1)
    """Failures within ``window`` that open the breaker."""
    window: float = Field(60.0, gt=0)
    """Seconds over which failures are counted."""
    cool_down: float = Field(30.0, gt=0)
    """Seconds an open breaker waits before one probe call."""


class BreakerOpen(AccordError):
    """A call was not made: its breaker is open (the fallback answers)."""

    def __init__(self, name: str, retry_at: float) -> None:
        self.name = name
        self.retry_at = retry_at
        super().__init__(f"circuit breaker {name} is open; no call made")


@dataclass(frozen=True)
class Breaker:
    """One breaker's stored record."""

    name: str
    """``agent:<id>`` or ``provider:<model>``."""
    state: BreakerState = BreakerState.CLOSED
    """Where it stands."""
    failures: int = 0
    """Failures counted in the current window."""
    window_start: float | None = None
    """When the current window's first failure happened."""
    opened_at: float | None = None
    """When it last opened (or when the half-open probe was granted)."""
    updated_at: float | None = None
    """When the record last changed."""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state.value, "failures": self.failures,
                "window_start": self.window_start, "opened_at": self.opened_at,
                "updated_at": self.updated_at}


def admit(breaker: Breaker, spec: BreakerSpec, now: float) -> tuple[bool, Breaker]:
    """Whether a call may go through now, and the record after asking (a probe is granted)."""
    if breaker.state is BreakerState.CLOSED:
        return True, breaker
    since = now - (breaker.opened_at or 0.0)
    if since < spec.cool_down:  # open and cooling down, or a probe still in flight
        return False, breaker
    # cool-down over (or a probe that never reported): this caller is the one probe
    return True, replace(breaker, state=BreakerState.HALF_OPEN, opened_at=now, updated_at=now)


def settle(breaker: Breaker, spec: BreakerSpec, now: float, *, ok: bool) -> Breaker:
    """The record after a call ended (``ok`` or failed)."""
    if ok:
        if breaker.state is BreakerState.CLOSED and breaker.failures == 0:
            return breaker
        return Breaker(breaker.name, updated_at=now)
    if breaker.state is not BreakerState.CLOSED:  # the probe failed, or a late failure
        return replace(breaker, state=BreakerState.OPEN, opened_at=now, updated_at=now)
    fresh = breaker.window_start is None or now - breaker.window_start > spec.window
    failures = 1 if fresh else breaker.failures + 1
    start = now if fresh else breaker.window_start
    state = BreakerState.OPEN if failures >= spec.failures else BreakerState.CLOSED
    return replace(breaker, state=state, failures=failures, window_start=start,
                   opened_at=now if state is BreakerState.OPEN else None, updated_at=now)


class BreakerStore:
    """Where breakers live; every change is one atomic read-modify-write."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock

    def change(self, name: str, step: Callable[[Breaker], tuple[Any, Breaker]]) -> Any:
        """Apply ``step`` to the stored record atomically; store its new record, return its
        answer."""
        raise NotImplementedError

    def all(self) -> list[Breaker]:
        """Every breaker, by name."""
        raise NotImplementedError

    def admit(self, name: str, spec: BreakerSpec) -> tuple[bool, Breaker]:
        now = self.clock()

        def step(b: Breaker) -> tuple[Any, Breaker]:
            allowed, after = admit(b, spec, now)
            return (allowed, after), after

        return self.change(name, step)

    def record(self, name: str, spec: BreakerSpec, *, ok: bool) -> tuple[Breaker, Breaker]:
        """Count a call's outcome; (record before, record after)."""
        now = self.clock()

        def step(b: Breaker) -> tuple[Any, Breaker]:
            after = settle(b, spec, now, ok=ok)
            return (b, after), after

        return self.change(name, step)


class MemoryBreakers(BreakerStore):
    """Breakers in process memory (``memory://``)."""

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._rows: dict[str, Breaker] = {}
        self._lock = threading.Lock()

    def change(self, name: str, step: Callable[[Breaker], tuple[Any, Breaker]]) -> Any:
        with self._lock:
            answer, after = step(self._rows.get(name, Breaker(name)))
            self._rows[name] = after
            return answer

    def all(self) -> list[Breaker]:
        with self._lock:
            return [self._rows[k] for k in sorted(self._rows)]


__all__ = [
    "Breaker",
    "BreakerOpen",
    "BreakerSpec",
    "BreakerState",
    "BreakerStore",
    "Clock",
    "MemoryBreakers",
    "admit",
    "settle",
]
