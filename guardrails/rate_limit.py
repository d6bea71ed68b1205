"""Rate limits on agents, models and end users, on pyrate-limiter's buckets.

One bucket per limited key and kind (``user:ana:requests``, ``model:openai:gpt-4o:tokens``),
sliding-window logs kept by pyrate-limiter: in this process by default, in Redis
(``redis://``), PostgreSQL (``postgresql://``, one table per bucket) or a SQLite file
(``sqlite:///``) when several processes share one limit. A call over a limit waits up to the
rule's ``max_wait`` for room, then is refused with :class:`RateLimited`.

Tokens are known after a model call: the call reserves what it is expected to use (its prompt
and ``expected_output_tokens``) before it goes out, and what it used beyond that is added once
its usage metadata is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyrate_limiter import AbstractBucket, BucketFactory, Duration, Limiter, Rate, RateItem

from accord.guardrails.base import GuardStop
from accord.guardrails.limits import RateLimitSpec, Scope
from accord.records import AuditKind

logger = logging.getLogger(__name__)

PERMITS_PER_WINDOW = 1000
"""Token limits are counted in units of ``ceil(limit / 1000)`` tokens (a bucket holds at most
about a thousand entries per window, whatever the limit)."""


class RateLimited(GuardStop):
    """A call found no room under a rate limit within its bounded wait; it was not made."""

    audit_kind = AuditKind.RATE_LIMITED

    def __init__(self, scope: Scope, key: str, kind: str, limit: str, waited: float) -> None:
        self.scope, self.key, self.kind, self.limit, self.waited = scope, key, kind, limit, waited
        super().__init__(f"rate limited: {scope} {key!r} is over {limit} "
                         f"(waited {waited:g}s)")

    def as_dict(self) -> dict[str, Any]:
        return {"reason": str(self), "scope": self.scope.value, "key": self.key, "measure": self.kind,
                "limit": self.limit, "waited": self.waited}


@dataclass(frozen=True)
class Quota:
    """One limit on one key, as pyrate-limiter counts it."""

    scope: Scope
    """What it counts against."""
    key: str
    """The agent id, model name or user id."""
    kind: str
    """``requests`` or ``tokens``."""
    rate: Rate
    """Permits per window."""
    unit: int
    """Tokens per permit (1 for requests)."""
    max_wait: float
    """Seconds a call may wait for room."""
    label: str
    """The limit as configured (for messages)."""

    @property
    def bucket(self) -> str:
        return f"{self.scope.value}:{self.key}:{self.kind}"

    def permits(self, amount: int) -> int:
        return max(0, math.ceil(amount / self.unit))


def request_quota(scope: Scope, key: str, spec: RateLimitSpec) -> Quota | None:
    """The requests-per-second quota of ``spec`` on ``key`` (None when it sets none)."""
    rps = spec.requests_per_second
    if rps is None:
        return None
    window = 1 if rps >= 1 else math.ceil(1 / rps)
    rate = Rate(max(1, round(rps * window)), Duration.SECOND * window)
    return Quota(scope, key, "requests", rate, 1, spec.max_wait, f"{rps:g} requests/s")


def token_quota(scope: Scope, key: str, spec: RateLimitSpec) -> Quota | None:
    """The tokens-per-minute quota of ``spec`` on ``key`` (None when it sets none)."""
    tpm = spec.tokens_per_minute
    if tpm is None:
        return None
    unit = max(1, math.ceil(tpm / PERMITS_PER_WINDOW))
    return Quota(scope, key, "tokens", Rate(tpm // unit, Duration.MINUTE), unit, spec.max_wait,
                 f"{tpm} tokens/min")


def _table(name: str) -> str:
    return "accord_" + hashlib.sha1(name.encode()).hexdigest()[:20]


class _Buckets(BucketFactory):
    """pyrate-limiter's bucket factory: one bucket per name, made on first use."""

    def __init__(self, make: Callable[[str, list[Rate]], AbstractBucket]) -> None:
        self._make = make
        self._rates: dict[str, list[Rate]] = {}
        self._made: dict[str, AbstractBucket] = {}
        self._lock = threading.Lock()

    def declare(self, name: str, rate: Rate) -> None:
        with self._lock:
            self._rates.setdefault(name, [rate])

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, time.time_ns() // 1_000_000, weight)

    def get(self, item: RateItem) -> AbstractBucket:
        with self._lock:
            bucket = self._made.get(item.name)
            if bucket is None:
                bucket = self._make(item.name, self._rates[item.name])
                self._made[item.name] = bucket
                self.schedule_leak(bucket)
            return bucket

    def owned_buckets(self) -> list[AbstractBucket]:
        with self._lock:
            return list(self._made.values())


_ZCOUNT_TO_NOW = "redis.call('ZCOUNT', bucket, window_start, now)"


def _redis_bucket_class() -> type:
    """pyrate-limiter's Redis bucket, counting every entry from the window's start on.

    Each process stamps its entry with its own clock before the script runs, so an entry
    stamped a millisecond later by another process can reach Redis first; counting only up to
    the caller's ``now`` would leave it out and let one request more through than the limit.
    """
    from pyrate_limiter import RedisBucket
    from pyrate_limiter.buckets.redis_bucket import LuaScript

    if _ZCOUNT_TO_NOW not in LuaScript.PUT_ITEM:
        raise RuntimeError("pyrate-limiter's Redis script changed: accord cannot bound its count")
    script = LuaScript.PUT_ITEM.replace(_ZCOUNT_TO_NOW,
                                        "redis.call('ZCOUNT', bucket, window_start, '+inf')")

    class SharedRedisBucket(RedisBucket):
        @classmethod
        def init(cls, rates, redis, bucket_key, algorithm=None):  # type: ignore[override]
            return cls(rates, redis, bucket_key, redis.script_load(script), algorithm)

    return SharedRedisBucket


def _maker(backend: str | None) -> tuple[Callable[[str, list[Rate]], AbstractBucket], Any]:
    """How buckets are made on ``backend``, and the client to close with them."""
    from pyrate_limiter import InMemoryBucket, PostgresBucket, SQLiteBucket

    if not backend or backend.startswith("memory://"):
        return (lambda name, rates: InMemoryBucket(rates)), None
    if backend.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(backend)
        bucket = _redis_bucket_class()
        return (lambda name, rates: bucket.init(rates, client, f"accord:ratelimit:{name}")), client
    if backend.startswith(("postgresql://", "postgres://")):
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(backend, min_size=1, max_size=4, open=True)
        return (lambda name, rates: PostgresBucket(pool, _table(name), rates)), pool
    path = backend.removeprefix("sqlite:///")
    return (lambda name, rates: SQLiteBucket.init_from_file(
        rates, table=_table(name), db_path=path, use_file_lock=True)), None


class RateLimiters:
    """The buckets of one graph's rate limits, made on the backend when first needed."""

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend
        self._limiter: Limiter | None = None
        self._factory: _Buckets | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    def _ready(self) -> tuple[Limiter, _Buckets]:
        with self._lock:
            if self._limiter is None:
                make, self._client = _maker(self.backend)
                self._factory = _Buckets(make)
                self._limiter = Limiter(self._factory, buffer_ms=10)
            return self._limiter, self._factory  # type: ignore[return-value]

    def _take(self, quota: Quota, permits: int, wait: bool) -> bool:
        limiter, factory = self._ready()
        factory.declare(quota.bucket, quota.rate)
        if permits <= 0:
            return True
        if not wait or quota.max_wait <= 0:
            return bool(limiter.try_acquire(quota.bucket, permits, blocking=False))
        return bool(limiter.try_acquire(quota.bucket, permits, blocking=True,
                                        timeout=quota.max_wait))

    async def acquire(self, quota: Quota, amount: int = 1) -> None:
        """Take ``amount`` (requests, or tokens) from ``quota``, waiting up to its
        ``max_wait``; :class:`RateLimited` when there is no room by then."""
        permits = quota.permits(amount)
        if permits > quota.rate.limit:
            raise RateLimited(quota.scope, quota.key, quota.kind, quota.label, 0.0)
        started = time.monotonic()
        if not await asyncio.to_thread(self._take, quota, permits, True):
            raise RateLimited(quota.scope, quota.key, quota.kind, quota.label,
                              round(time.monotonic() - started, 3))

    async def add(self, quota: Quota, amount: int) -> None:
        """Count ``amount`` more tokens used (no wait: the call already happened): the window
        is filled up to its limit, so the next call waits; what exceeds it is logged."""
        permits = min(quota.permits(amount), quota.rate.limit)
        wanted = permits
        while permits > 0:
            if await asyncio.to_thread(self._take, quota, permits, False):
                wanted -= permits
                permits = min(permits, wanted)
            else:
                permits //= 2
        if wanted > 0:
            logger.info("%s: about %d tokens over the limit", quota.bucket, wanted * quota.unit)

    def close(self) -> None:
        with self._lock:
            if self._factory is not None:
                self._factory.close()
            if self._client is not None:
                self._client.close()
            self._limiter = self._factory = self._client = None


__all__ = ["Quota", "RateLimited", "RateLimiters", "request_quota", "token_quota"]
