"""What model calls cost: one row per call in ``accord_usage``, beside accord's tables.

Each row holds the thread, the task (the request), the agent, the end user, the model, its
token counts (from the model's usage metadata) and its cost (from the configured prices). It
is written when the call returns, in a transaction of its own: money spent stays spent, whatever
happens to the step. Budgets sum it; ``accord usage`` groups it. On ``memory://`` (and without
accord's saver) the rows live in this process.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from accord.guardrails.limits import Scope

_DDL = (
    "CREATE TABLE IF NOT EXISTS accord_usage (id TEXT PRIMARY KEY, at TEXT NOT NULL,"
    " day TEXT NOT NULL, thread_id TEXT, task_id TEXT, agent TEXT, user_id TEXT,"
    " model TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
    " cost DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS accord_usage_day ON accord_usage (day)",
    "CREATE INDEX IF NOT EXISTS accord_usage_user ON accord_usage (user_id, day)",
    "CREATE INDEX IF NOT EXISTS accord_usage_task ON accord_usage (task_id)",
)
_COLUMNS = ("id", "at", "day", "thread_id", "task_id", "agent", "user_id", "model",
            "input_tokens", "output_tokens", "cost")
GROUPS = {"agent": "agent", "user": "user_id", "day": "day", "model": "model"}
"""What ``accord usage --by`` groups on, and the column."""


def today() -> str:
    """The current UTC day, ``YYYY-MM-DD`` (the day budgets count)."""
    return datetime.now(UTC).date().isoformat()


@dataclass(frozen=True)
class UsageRecord:
    """One model call's tokens and cost."""

    model: str
    """The resolved model name."""
    input_tokens: int
    """Prompt tokens (usage metadata)."""
    output_tokens: int
    """Completion tokens (usage metadata)."""
    cost: float
    """USD, from the configured prices."""
    agent: str | None = None
    """The agent that made the call."""
    user_id: str | None = None
    """The end user the run was for."""
    thread_id: str | None = None
    """The thread."""
    task_id: str | None = None
    """The request (task) the call served."""
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    """When the call returned (UTC)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique id."""

    @property
    def day(self) -> str:
        return self.at[:10]


@dataclass(frozen=True)
class UsageRow:
    """One group of ``accord usage``: calls, tokens, cost."""

    group: str
    """The agent, user, day or model."""
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float


def _where(scope: Scope, key: str | None, day: str) -> tuple[str, tuple[Any, ...]]:
    if scope is Scope.RUN:
        return "task_id = %s", (key,)
    if scope is Scope.DAY:
        return "day = %s", (day,)
    column = "agent" if scope is Scope.AGENT else "user_id"
    return f"{column} = %s AND day = %s", (key, day)


class UsageStore:
    """The usage rows of one database (or of this process)."""

    def record(self, record: UsageRecord) -> None:
        raise NotImplementedError

    def spent(self, scope: Scope, key: str | None, day: str | None = None) -> float:
        """USD spent by an agent or user today, by a request, or by the whole graph today."""
        raise NotImplementedError

    def summary(self, by: str) -> list[UsageRow]:
        """Calls, tokens and cost grouped by agent, user, day or model."""
        raise NotImplementedError


class MemoryUsage(UsageStore):
    """Usage kept in this process."""

    def __init__(self) -> None:
        self.rows: list[UsageRecord] = []
        self._lock = threading.Lock()

    def record(self, record: UsageRecord) -> None:
        with self._lock:
            self.rows.append(record)

    def _match(self, row: UsageRecord, scope: Scope, key: str | None, day: str) -> bool:
        if scope is Scope.RUN:
            return row.task_id == key
        if scope is Scope.DAY:
            return row.day == day
        return row.day == day and (row.agent if scope is Scope.AGENT else row.user_id) == key

    def spent(self, scope: Scope, key: str | None, day: str | None = None) -> float:
        day = day or today()
        with self._lock:
            return sum(r.cost for r in self.rows if self._match(r, scope, key, day))

    def summary(self, by: str) -> list[UsageRow]:
        groups: dict[str, list[UsageRecord]] = {}
        with self._lock:
            for row in self.rows:
                groups.setdefault(str(getattr(row, GROUPS[by]) or "-"), []).append(row)
        return [UsageRow(g, len(rs), sum(r.input_tokens for r in rs),
                         sum(r.output_tokens for r in rs), sum(r.cost for r in rs))
                for g, rs in sorted(groups.items())]


class SqlUsage(UsageStore):
    """Usage in ``accord_usage`` of a saver's database, through its transactions."""

    def __init__(self, saver: Any) -> None:
        self.saver = saver
        self._ready = False

    def _sql(self, text: str) -> str:
        return self.saver.dialect.sql(text)

    def _setup(self, cur: Any) -> None:
        if not self._ready:
            for statement in _DDL:
                cur.execute(statement)

    def _query(self, body: Any) -> Any:
        def run(cur: Any) -> Any:
            self._setup(cur)
            return body(cur)

        if self._ready:
            return self.saver._read(run)
        result = self.saver._transaction(None, run)
        self._ready = True  # known to exist once committed: a transaction cut short rolls them back
        return result

    def record(self, record: UsageRecord) -> None:
        values = {**asdict(record), "day": record.day}
        marks = ", ".join(["%s"] * len(_COLUMNS))

        def body(cur: Any) -> None:
            self._setup(cur)
            cur.execute(self._sql(f"INSERT INTO accord_usage ({', '.join(_COLUMNS)}) VALUES "
                                  f"({marks}) ON CONFLICT (id) DO NOTHING"),
                        tuple(values[c] for c in _COLUMNS))

        self.saver._transaction(None, body)
        self._ready = True

    def spent(self, scope: Scope, key: str | None, day: str | None = None) -> float:
        clause, params = _where(scope, key, day or today())

        def body(cur: Any) -> float:
            cur.execute(self._sql(f"SELECT COALESCE(SUM(cost), 0) AS spent FROM accord_usage "
                                  f"WHERE {clause}"), params)
            row = cur.fetchone()
            return float(row["spent"] if isinstance(row, dict) else row[0])

        return self._query(body)

    def summary(self, by: str) -> list[UsageRow]:
        column = GROUPS[by]

        def body(cur: Any) -> list[UsageRow]:
            cur.execute(f"SELECT COALESCE({column}, '-') AS g, COUNT(*) AS calls,"
                        " SUM(input_tokens) AS i, SUM(output_tokens) AS o, SUM(cost) AS c"
                        f" FROM accord_usage GROUP BY COALESCE({column}, '-') ORDER BY g")
            rows = cur.fetchall()
            out = []
            for row in rows:
                g, calls, i, o, c = ((row["g"], row["calls"], row["i"], row["o"], row["c"])
                                     if isinstance(row, dict) else tuple(row))
                out.append(UsageRow(str(g), int(calls), int(i), int(o), float(c)))
            return out

        return self._query(body)


_STORES: weakref.WeakKeyDictionary[Any, UsageStore] = weakref.WeakKeyDictionary()
"""The usage store of each open saver."""


def usage_for(saver: Any) -> UsageStore:
    """The usage store of ``saver``'s database (in this process for ``memory://``)."""
    store = _STORES.get(saver)
    if store is None:
        dialect = getattr(getattr(saver, "dialect", None), "name", None)
        store = SqlUsage(saver) if dialect in ("sqlite", "postgres") else MemoryUsage()
        _STORES[saver] = store
    return store


def total(rows: Iterable[UsageRow]) -> UsageRow:
    rows = list(rows)
    return UsageRow("total", sum(r.calls for r in rows), sum(r.input_tokens for r in rows),
                    sum(r.output_tokens for r in rows), sum(r.cost for r in rows))


__all__ = ["GROUPS", "MemoryUsage", "SqlUsage", "UsageRecord", "UsageRow", "UsageStore",
           "today", "total", "usage_for"]
