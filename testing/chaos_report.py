"""What a chaos drill proves, read from the databases after it, not from what workers said.

- every thread of the drill is looked up in the thread index: ``done`` counts as completed,
  ``failed`` as failed (its cause kept); anything else (still ``running`` or ``interrupted``,
  or unknown) is **lost**;
- **duplicate side effects** are read from the sample company's database: each drill request
  carries a case tag and causes at most one refund or ticket, so a second row for one tag is a
  side effect that happened twice; a refund or ticket recorded twice under one idempotency key
  counts as well;
- fallbacks and breaker trips are counted in the threads' audit logs; retries are the model
  requests that repeated an earlier request word for word (the client trying again).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from accord.records import AuditEvent, AuditKind, ThreadStatus

__all__ = ["ChaosReport", "count_dead_letters", "duplicate_side_effects", "model_retries",
           "percentile"]

SIDE_EFFECTS = (("refunds", "reason"), ("tickets", "body"))
"""Tables of the sample company's side effects, and the column that carries the request."""


class ChaosReport(BaseModel):
    """The outcome of ``accord chaos``."""

    model_config = ConfigDict(frozen=True)

    graph: str
    """The graph drilled."""
    database: str
    """``sqlite`` or ``postgres``."""
    runs: int
    """Requests sent."""
    concurrency: int
    """Workers running threads at once."""
    faults: dict[str, Any]
    """The faults asked for."""
    completed: int
    """Threads the index says are ``done``."""
    dead_lettered: int
    """Tasks stored as dead letters."""
    failed: int
    """Threads the index says are ``failed`` (with their cause in ``failures``)."""
    lost: int
    """Threads neither done nor failed at the end (must be 0)."""
    duplicate_side_effects: int
    """Side effects that happened more than once (must be 0)."""
    retries: int
    """Model requests that repeated an earlier one (the client retrying)."""
    fallbacks: int
    """Agents replaced by their fallback (``fallback`` audit events)."""
    breaker_trips: int
    """Circuit breakers that opened (``breaker_opened`` audit events)."""
    p50_s: float
    """Median seconds from a request's first step to its thread's end."""
    p95_s: float
    """95th percentile of the same."""
    workers_killed: int
    """Worker processes SIGKILLed mid-step."""
    db_sessions_dropped: int
    """Database sessions terminated under the workers."""
    recoveries: int
    """Steps sent again after a kill, a dropped session or a failed step."""
    handoffs_damaged: int = 0
    """Handoff envelopes stored corrupt (each must be refused and dead-lettered)."""
    checkpoints_damaged: int = 0
    """Latest stored checkpoints damaged in the database (each thread replayed from the newest
    intact one)."""
    letters_retried: int = 0
    """Dead letters retried (``accord dlq retry``)."""
    replays: int = 0
    """Threads stopped by a damaged checkpoint and taken on from their newest intact one."""
    model_requests: int
    """Requests the model server received."""
    model_faults: int
    """Requests it answered with a fault."""
    failures: dict[str, int]
    """Causes of the failed threads, counted."""
    lost_threads: list[str]
    """The lost threads, by id."""
    duplicates: dict[str, int]
    """Side effects that happened more than once: ``table:case tag`` -> extra rows."""

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicate_side_effects == 0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1])


def duplicate_side_effects(support_db: Path, tags: Iterable[str]) -> dict[str, int]:
    """Side-effect rows beyond one per drill request (by tag), plus rows repeating an
    idempotency key (by key)."""
    extra: dict[str, int] = {}
    with closing(sqlite3.connect(support_db)) as conn:
        for table, column in SIDE_EFFECTS:
            rows = conn.execute(f"SELECT {column}, idempotency_key FROM {table}").fetchall()
            for key, n in Counter(key for _, key in rows).items():
                if n > 1:
                    extra[f"{table}:{key}"] = n - 1
            for tag in tags:
                hits = sum(1 for text, _ in rows if text and tag in text)
                if hits > 1:
                    extra[f"{table}:{tag}"] = extra.get(f"{table}:{tag}", 0) + hits - 1
    return extra


def model_retries(requests: Iterable[dict[str, Any]]) -> int:
    """Requests whose body repeats an earlier request's exactly."""
    seen: set[str] = set()
    repeats = 0
    for body in requests:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if digest in seen:
            repeats += 1
        seen.add(digest)
    return repeats


def count_dead_letters(events: Iterable[AuditEvent]) -> int:
    """Tasks stored as dead letters, from the audit log (events named ``dead_letter…``)."""
    return sum(1 for e in events if str(e.kind).startswith("dead_letter"))


def audit_counts(logs: Iterable[list[AuditEvent]]) -> tuple[int, int, int]:
    """Fallbacks, breaker trips and dead letters over the threads' audit logs."""
    fallbacks = trips = letters = 0
    for events in logs:
        fallbacks += sum(1 for e in events if e.kind is AuditKind.FALLBACK)
        trips += sum(1 for e in events if e.kind is AuditKind.BREAKER_OPENED)
        letters += count_dead_letters(events)
    return fallbacks, trips, letters


def statuses(records: dict[str, Any]) -> tuple[int, int, list[str], Counter[str]]:
    """Completed, failed, lost thread ids and the failures' causes, from index records."""
    completed = failed = 0
    lost: list[str] = []
    causes: Counter[str] = Counter()
    for thread_id, record in records.items():
        status = record.status if record is not None else None
        if status is ThreadStatus.DONE:
            completed += 1
        elif status is ThreadStatus.FAILED:
            failed += 1
            causes[_cause_kind(record.error or "")] += 1
        else:
            lost.append(thread_id)
    return completed, failed, sorted(lost), causes


def _cause_kind(error: str) -> str:
    """A failure's cause without the thread's own numbers (so causes can be counted)."""
    head = error.split(": ", 2)
    text = ": ".join(head[:2]) if len(head) > 1 else error
    return "".join(ch if not ch.isdigit() else "#" for ch in text)[:90]
