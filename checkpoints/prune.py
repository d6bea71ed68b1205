"""Retention: keep only the latest checkpoint of each thread, or delete whole idle threads.

```python
report = prune("sqlite:///.accord/accord.db", keep_latest=True)
report = prune(url, older_than=timedelta(days=30), status="done")
report = expire_threads(url, ttl=timedelta(days=90))
```

The deleting itself is the saver's `prune(thread_ids, strategy=...)` (shipped by the Postgres
savers, added by accord to the SQLite and memory ones); this module picks the threads, measures
the database before and after, keeps the thread index in step and shrinks a SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg_pool import ConnectionPool

from accord.checkpoints.connections import CONNECT_TIMEOUT
from accord.checkpoints.errors import CheckpointError
from accord.checkpoints.savers import open_saver
from accord.checkpoints.threads import ThreadIndex, ThreadStatus, utc_now


@dataclass(frozen=True)
class StorageSize:
    """How much a checkpoint database holds."""

    checkpoints: int
    """Rows of checkpoints."""
    writes: int
    """Rows of pending writes."""
    blobs: int
    """Rows of channel blobs (Postgres and memory; SQLite stores values inline: 0)."""
    bytes: int | None
    """Bytes on disk (SQLite file + WAL, Postgres relation sizes), None when not measurable."""

    @property
    def rows(self) -> int:
        """All rows together."""
        return self.checkpoints + self.writes + self.blobs


@dataclass(frozen=True)
class PruneReport:
    """What one `prune` did."""

    threads_deleted: tuple[str, ...]
    """Threads deleted whole (idle longer than `older_than`)."""
    threads_pruned: tuple[str, ...]
    """Threads cut down to their latest checkpoint (`keep_latest`)."""
    before: StorageSize
    """The database before."""
    after: StorageSize
    """The database after (and after `VACUUM` for SQLite)."""

    @property
    def threads_affected(self) -> int:
        """Threads deleted or cut down."""
        return len(self.threads_deleted) + len(self.threads_pruned)

    @property
    def checkpoints_deleted(self) -> int:
        """Checkpoint rows gone (a concurrent run's new rows count against it)."""
        return self.before.checkpoints - self.after.checkpoints

    @property
    def writes_deleted(self) -> int:
        """Write rows gone."""
        return self.before.writes - self.after.writes

    @property
    def blobs_deleted(self) -> int:
        """Blob rows gone."""
        return self.before.blobs - self.after.blobs


def prune(
    url: str | None = None,
    *,
    keep_latest: bool = False,
    older_than: timedelta | None = None,
    status: ThreadStatus | str | None = None,
    now: datetime | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> PruneReport:
    """Prune the checkpoint database at `url`; see `prune_saver`.

    For `memory://` this opens a fresh, empty saver: use `prune_saver` on the one you hold.
    """
    with open_saver(url, timeout=timeout) as saver:
        return prune_saver(
            saver, keep_latest=keep_latest, older_than=older_than, status=status, now=now
        )


def expire_threads(
    url: str | None,
    ttl: timedelta,
    *,
    status: ThreadStatus | str | None = None,
    now: datetime | None = None,
) -> PruneReport:
    """Delete the threads idle longer than `ttl` (a thread time-to-live)."""
    return prune(url, older_than=ttl, status=status, now=now)


def prune_saver(
    saver: BaseCheckpointSaver,
    index: ThreadIndex | None = None,
    *,
    keep_latest: bool = False,
    older_than: timedelta | None = None,
    status: ThreadStatus | str | None = None,
    now: datetime | None = None,
) -> PruneReport:
    """Prune an open saver and its thread index (accord's savers carry theirs).

    - `older_than`: delete whole threads whose last update (the index's `updated_at`, else the
      newest checkpoint's `ts`) is older than that; `timedelta(0)` means all matching threads.
    - `keep_latest`: cut every other matching thread down to its latest checkpoint per namespace,
      with its writes (it can still continue from there).
    - `status`: only threads the index records with this status.
    """
    if not keep_latest and older_than is None:
        raise CheckpointError("prune needs keep_latest=True and/or older_than=<timedelta>")
    if index is None:
        index = getattr(saver, "threads", None)
    if status is not None and index is None:
        raise CheckpointError("filtering by status needs the thread index")
    status = ThreadStatus(status) if status is not None else None
    stored = set(_thread_ids(saver))
    indexed = {r.thread_id: r for r in index.list(status)} if index is not None else {}
    candidates = set(indexed) if status is not None else stored | set(indexed)

    doomed: set[str] = set()
    if older_than is not None:
        cutoff = (now or utc_now()) - older_than
        for thread_id in candidates:
            record = indexed.get(thread_id)
            last = record.updated_at if record else _newest_checkpoint_ts(saver, thread_id)
            if last is None or last < cutoff:
                doomed.add(thread_id)
    trimmed = (candidates - doomed) & stored if keep_latest else set()

    before = measure(saver)
    if doomed:
        saver.prune(sorted(doomed), strategy="delete")
        if index is not None and getattr(index, "_saver", None) is not saver:
            index.delete(doomed)  # an index kept apart from the saver
    if trimmed:
        saver.prune(sorted(trimmed), strategy="keep_latest")
    if isinstance(saver, SqliteSaver) and (doomed or trimmed):
        _vacuum(saver)
    return PruneReport(
        threads_deleted=tuple(sorted(doomed)),
        threads_pruned=tuple(sorted(trimmed)),
        before=before,
        after=measure(saver),
    )


def measure(saver: BaseCheckpointSaver) -> StorageSize:
    """Rows (and bytes where measurable) a saver holds."""
    if isinstance(saver, SqliteSaver):
        with saver.cursor() as cur:
            checkpoints = cur.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            writes = cur.execute("SELECT count(*) FROM writes").fetchone()[0]
            pages, size = (
                cur.execute("PRAGMA page_count").fetchone()[0],
                cur.execute("PRAGMA page_size").fetchone()[0],
            )
        return StorageSize(checkpoints, writes, 0, pages * size + _wal_bytes(saver))
    if isinstance(saver, PostgresSaver):
        with _pg_connection(saver) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM checkpoints) AS c, "
                "(SELECT count(*) FROM checkpoint_writes) AS w, "
                "(SELECT count(*) FROM checkpoint_blobs) AS b, "
                "pg_total_relation_size('checkpoints') + pg_total_relation_size('checkpoint_writes')"
                " + pg_total_relation_size('checkpoint_blobs') AS bytes"
            ).fetchone()
        return StorageSize(row["c"], row["w"], row["b"], row["bytes"])
    if isinstance(saver, InMemorySaver):
        checkpoints = sum(len(ns) for t in saver.storage.values() for ns in t.values())
        writes = sum(len(w) for w in saver.writes.values())
        return StorageSize(checkpoints, writes, len(saver.blobs), None)
    raise TypeError(f"cannot measure a {type(saver).__name__}")


def _thread_ids(saver: BaseCheckpointSaver) -> Iterable[str]:
    if isinstance(saver, SqliteSaver):
        with saver.cursor(transaction=False) as cur:
            return [r[0] for r in cur.execute("SELECT DISTINCT thread_id FROM checkpoints")]
    if isinstance(saver, PostgresSaver):
        with _pg_connection(saver) as conn:
            return [
                r["thread_id"]
                for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()
            ]
    if isinstance(saver, InMemorySaver):
        return [t for t, namespaces in saver.storage.items() if any(namespaces.values())]
    raise TypeError(f"cannot list the threads of a {type(saver).__name__}")


@contextmanager
def _pg_connection(saver: PostgresSaver) -> Iterator[psycopg.Connection]:
    """A connection from the saver's pool (or its single connection)."""
    if isinstance(saver.conn, ConnectionPool):
        with saver.conn.connection() as conn:
            yield conn
    else:
        yield saver.conn


def _newest_checkpoint_ts(saver: BaseCheckpointSaver, thread_id: str) -> datetime | None:
    latest: Any = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    if latest is None:
        return None
    return datetime.fromisoformat(latest.checkpoint["ts"])


def _wal_bytes(saver: SqliteSaver) -> int:
    row = saver.conn.execute("PRAGMA database_list").fetchone()
    path = row[2] if row else ""
    try:
        return Path(path + "-wal").stat().st_size if path else 0
    except OSError:
        return 0


def _vacuum(saver: SqliteSaver) -> None:
    """Give the freed pages back to the file system."""
    with saver.lock:
        saver.conn.commit()
        saver.conn.execute("VACUUM")
        saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
