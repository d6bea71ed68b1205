"""The relay: accord's outbox published to a broker, at least once, in order of writing.

``Relay(db_url, broker).run(stop)`` leases a batch of unpublished rows of ``accord_outbox``
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several relays share the work; SQLite: one write
transaction), publishes them in order, and marks them published. A relay killed between the
publish and the mark publishes those rows again once their lease runs out (``lease`` seconds):
consumers deduplicate on ``event_id``. A broker that is down leaves the rows where they are; the
relay tries again with a growing pause, and the runs that write events never notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from accord.checkpoints.connections import connect_postgres, connect_sqlite
from accord.checkpoints.journal import SQLITE
from accord.checkpoints.journal_pg import POSTGRES
from accord.checkpoints.urls import Backend, parse_url, resolve_url
from accord.errors import AccordError
from accord.workers.brokers import Broker, BrokerUnavailable

logger = logging.getLogger(__name__)


class OutboxMissing(AccordError):
    """The database has no ``accord_outbox`` table (accord has never opened it)."""


@dataclass
class OutboxTable:
    """The relay's reads and writes of ``accord_outbox`` (blocking; run off the loop)."""

    url: str

    def __post_init__(self) -> None:
        self.db = parse_url(resolve_url(self.url))
        if self.db.backend is Backend.MEMORY:
            raise OutboxMissing("memory:// keeps its events in its own process: relay from a "
                                "SQLite or PostgreSQL database")
        self.dialect = SQLITE if self.db.backend is Backend.SQLITE else POSTGRES
        self.conn: Any = (connect_sqlite(self.db, autocommit=True)
                          if self.db.backend is Backend.SQLITE else connect_postgres(self.db))
        try:
            self._exec("SELECT 1 FROM accord_outbox WHERE 1 = 0")
        except Exception:  # noqa: BLE001 - any driver's "no such table"
            self.close()
            raise OutboxMissing(f"{self.db.display} has no accord_outbox table: open it with "
                                "accord once (accord threads --db …) to create accord's tables"
                                ) from None

    def _exec(self, sql: str, params: tuple = ()) -> list[Any]:
        cur = self.conn.execute(self.dialect.sql(sql), params)
        return cur.fetchall() if cur.description else []

    def _now(self, delta: float = 0.0) -> Any:
        return self.dialect.ts_in(datetime.now(UTC) + timedelta(seconds=delta))

    def lease(self, batch: int, seconds: float) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``batch`` unpublished rows nobody holds, held for ``seconds``; oldest first."""
        skip = " FOR UPDATE SKIP LOCKED" if self.dialect.name == "postgres" else ""
        sql = ("UPDATE accord_outbox SET leased_until = %s WHERE seq IN (SELECT seq FROM"
               " accord_outbox WHERE published_at IS NULL AND (leased_until IS NULL OR"
               f" leased_until < %s) ORDER BY seq LIMIT %s{skip}) RETURNING seq, body")
        if self.dialect.name == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._exec(sql, (self._now(seconds), self._now(), batch))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        else:
            rows = self._exec(sql, (self._now(seconds), self._now(), batch))
        out = [(int(_col(r, "seq", 0)), self.dialect.json_out(_col(r, "body", 1))) for r in rows]
        return sorted(out, key=lambda pair: pair[0])

    def mark(self, seqs: list[int]) -> None:
        """The rows were published."""
        self._set(seqs, "published_at = %s, leased_until = NULL", (self._now(),))

    def release(self, seqs: list[int]) -> None:
        """The rows were not published: another round (or relay) may take them now."""
        self._set(seqs, "leased_until = NULL", ())

    def _set(self, seqs: list[int], change: str, params: tuple) -> None:
        if not seqs:
            return
        marks = ", ".join(["%s"] * len(seqs))
        self._exec(f"UPDATE accord_outbox SET {change} WHERE seq IN ({marks})",
                   (*params, *seqs))

    def pending(self) -> int:
        """Rows not yet published."""
        [row] = self._exec("SELECT COUNT(*) AS n FROM accord_outbox WHERE published_at IS NULL")
        return int(_col(row, "n", 0))

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


def _col(row: Any, name: str, index: int) -> Any:
    return row[name] if isinstance(row, dict) else row[index]


@dataclass
class Relay:
    """Publishes the outbox of one database to one broker."""

    table: OutboxTable
    broker: Broker
    batch: int = 200
    """Rows leased at a time."""
    lease: float = 30.0
    """Seconds a leased row waits for its relay before another may take it."""
    idle: float = 0.5
    """Seconds between two looks at an empty outbox."""
    max_pause: float = 15.0
    """Longest pause after the broker failed (the pause doubles from ``idle``)."""
    published: int = 0
    """Events published by this relay."""
    on_publish: Callable[[int], None] | None = None
    """Called with the running count after each batch (progress)."""

    async def run_once(self) -> int:
        """Publish one batch; how many rows it published (0: the outbox is empty)."""
        rows = await asyncio.to_thread(self.table.lease, self.batch, self.lease)
        done: list[int] = []
        try:
            for seq, event in rows:
                await self.broker.publish(event)
                done.append(seq)
        finally:
            await asyncio.to_thread(self.table.mark, done)
            rest = [seq for seq, _ in rows if seq not in set(done)]
            if rest:
                await asyncio.to_thread(self.table.release, rest)
            self.published += len(done)
            if self.on_publish is not None and done:
                self.on_publish(self.published)
        return len(done)

    async def run(self, stop: asyncio.Event, *, until_empty: bool = False) -> int:
        """Publish until ``stop`` is set (or, with ``until_empty``, the outbox is empty)."""
        pause = self.idle
        while not stop.is_set():
            try:
                sent = await self.run_once()
                pause = self.idle
            except BrokerUnavailable as exc:
                logger.warning("relay: %s; the events wait in the outbox (next try in %.1f s)",
                               exc, pause)
                sent, pause = 0, min(pause * 2, self.max_pause)
                if until_empty:
                    raise
            if sent:
                continue
            if until_empty:
                break
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass
        return self.published


__all__ = ["OutboxMissing", "OutboxTable", "Relay"]
