"""Dead letters in a table beside accord's others (``accord_dead_letters``).

A dead letter is work accord could not finish: a run that ended ``failed``, a handoff that was
refused (expired, corrupt, of an unknown schema version, invalid for its recipient), a task
whose retries and fallbacks are exhausted. It keeps what is needed to try again: the payload,
the error, the attempts so far, the agent (id and version), the thread and the checkpoint to
re-enter from. Letters are written in the transaction of the step (or of the run's end) that
produced them, and deleted with their thread.

The SQL is written once with ``%s`` placeholders (``Dialect.sql``); ``memory://`` and foreign
savers keep the letters in their in-process journal.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from accord.errors import AccordError


class LetterReason(StrEnum):
    """Why work became a dead letter."""

    FAILED = "failed"
    """The run stopped on an error; the thread is ``failed``."""
    EXHAUSTED = "exhausted"
    """An agent's retries and fallbacks were all used up."""
    EXPIRED = "expired"
    """A handoff waited longer than its TTL."""
    CORRUPT = "corrupt"
    """A stored handoff could not be read as an envelope."""
    INVALID = "invalid"
    """A handoff's payload does not satisfy its recipient's input schema."""
    UNKNOWN_VERSION = "unknown_version"
    """A stored handoff has a schema version accord does not know."""


class LetterStatus(StrEnum):
    """Where a dead letter stands."""

    DEAD = "dead"
    """Waiting for a retry or a discard."""
    RETRIED = "retried"
    """Retried; ``resolution`` says how the retry ended."""
    DISCARDED = "discarded"
    """Given up on by a person; kept until its thread is pruned."""


class DeadLetterCorrupt(AccordError):
    """A row of ``accord_dead_letters`` holds a value accord cannot read (edited by hand?)."""


class DeadLetter(BaseModel):
    """One dead letter, as stored."""

    model_config = ConfigDict(frozen=True)

    id: str
    """``dl-`` and 16 hex digits."""
    thread_id: str
    """The thread of the work."""
    checkpoint_id: str | None
    """The checkpoint a retry re-enters from."""
    task_id: str | None
    """The task, when known."""
    node: str | None
    """The node that failed or refused the work."""
    agent: str | None
    """The agent's id, when an agent was involved."""
    agent_version: str | None
    """The agent's version."""
    reason: LetterReason
    """Why it is a dead letter."""
    error: str
    """The cause, one line."""
    payload: Any = None
    """What the work was given: the handoff, or the task's record."""
    attempts: int = 1
    """Times this task has been tried at this node, this one included."""
    status: LetterStatus = LetterStatus.DEAD
    """Dead, retried or discarded."""
    created_at: datetime
    """When it was recorded."""
    resolved_at: datetime | None = None
    """When it was retried or discarded."""
    resolution: str | None = None
    """How a retry ended (the thread's status), or why it was discarded."""

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def new_letter_id() -> str:
    return f"dl-{uuid.uuid4().hex[:16]}"


COLUMNS = ("id", "thread_id", "checkpoint_id", "task_id", "node", "agent", "agent_version",
           "reason", "error", "payload", "attempts", "status", "created_at", "resolved_at",
           "resolution")

SQLITE_DDL = (
    """CREATE TABLE IF NOT EXISTS accord_dead_letters (
        id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, checkpoint_id TEXT, task_id TEXT,
        node TEXT, agent TEXT, agent_version TEXT, reason TEXT NOT NULL, error TEXT NOT NULL,
        payload TEXT, attempts INTEGER NOT NULL, status TEXT NOT NULL,
        created_at TEXT NOT NULL, resolved_at TEXT, resolution TEXT)""",
    "CREATE INDEX IF NOT EXISTS accord_dead_letters_thread ON accord_dead_letters (thread_id)",
    """CREATE INDEX IF NOT EXISTS accord_dead_letters_status
        ON accord_dead_letters (status, created_at)""",
)
POSTGRES_DDL = (
    """CREATE TABLE IF NOT EXISTS accord_dead_letters (
        id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, checkpoint_id TEXT, task_id TEXT,
        node TEXT, agent TEXT, agent_version TEXT, reason TEXT NOT NULL, error TEXT NOT NULL,
        payload JSONB, attempts INTEGER NOT NULL, status TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, resolved_at TIMESTAMPTZ, resolution TEXT)""",
    *SQLITE_DDL[1:],
)


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _letter(dialect: Any, row: Any) -> DeadLetter:
    values = dict(row) if isinstance(row, dict) else dict(zip(COLUMNS, row, strict=True))
    try:
        if dialect.name != "postgres":  # psycopg decodes JSONB itself (a JSON string too)
            values["payload"] = dialect.json_out(values["payload"])
        values["created_at"] = _ts(values["created_at"])
        values["resolved_at"] = _ts(values["resolved_at"])
        return DeadLetter.model_validate(values)
    except (ValueError, TypeError, ValidationError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise DeadLetterCorrupt(f"accord_dead_letters row {values.get('id')!r}: {first}") from None


def _memory(dialect: Any) -> dict[str, DeadLetter] | None:
    """The in-process letters of ``memory://`` and foreign savers (None: a SQL database)."""
    return getattr(dialect, "letters", None)


def insert_letter(dialect: Any, cur: Any, fields: dict[str, Any], now: datetime) -> DeadLetter:
    """Store a new letter inside the caller's transaction (``attempts`` counted here when the
    fields do not give it); a letter id already stored is kept as it is."""
    fields = dict(fields)
    fields.setdefault("id", new_letter_id())
    memory = _memory(dialect)
    if "attempts" not in fields or fields["attempts"] is None:
        task, node = fields.get("task_id") or "", fields.get("node") or ""
        if memory is not None:
            earlier = sum(1 for letter in memory.values()
                          if letter.thread_id == fields["thread_id"]
                          and (letter.task_id or "") == task and (letter.node or "") == node)
        else:
            cur.execute(dialect.sql(
                "SELECT COUNT(*) AS n FROM accord_dead_letters WHERE thread_id = %s"
                " AND COALESCE(task_id, '') = %s AND COALESCE(node, '') = %s"),
                (fields["thread_id"], task, node))
            row = cur.fetchone()
            earlier = int(row["n"] if isinstance(row, dict) else row[0])
        fields["attempts"] = earlier + 1
    letter = DeadLetter.model_validate({**fields, "created_at": now.astimezone(UTC),
                                        "status": LetterStatus.DEAD})
    if memory is not None:
        memory.setdefault(letter.id, letter.model_copy(
            update={"payload": dialect_json(letter.payload)}))
        return letter
    cur.execute(dialect.sql(
        f"INSERT INTO accord_dead_letters ({', '.join(COLUMNS)}) VALUES"
        f" ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (id) DO NOTHING"),
        (letter.id, letter.thread_id, letter.checkpoint_id, letter.task_id, letter.node,
         letter.agent, letter.agent_version, letter.reason.value, letter.error,
         dialect.json_in(letter.payload), letter.attempts, letter.status.value,
         dialect.ts_in(letter.created_at), None, None))
    return letter


def dialect_json(value: Any) -> Any:
    """``value`` as JSON would give it back (what a SQL database stores); NUL characters,
    which PostgreSQL's text and JSONB cannot hold, become U+FFFD (a damaged payload is still
    kept, with the damage visible)."""
    if value is None:
        return None
    return _without_nul(json.loads(json.dumps(value, default=str)))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def get_letter(dialect: Any, cur: Any, letter_id: str) -> DeadLetter | None:
    memory = _memory(dialect)
    if memory is not None:
        return memory.get(letter_id)
    cur.execute(dialect.sql(
        f"SELECT {', '.join(COLUMNS)} FROM accord_dead_letters WHERE id = %s"), (letter_id,))
    row = cur.fetchone()
    return None if row is None else _letter(dialect, row)


def list_letters(dialect: Any, cur: Any, *, status: LetterStatus | None = None,
                 thread_id: str | None = None, limit: int | None = None) -> list[DeadLetter]:
    """Letters, newest first."""
    memory = _memory(dialect)
    if memory is not None:
        found = [x for x in memory.values() if (status is None or x.status is status)
                 and (thread_id is None or x.thread_id == thread_id)]
        found.sort(key=lambda x: x.created_at, reverse=True)
        return found[:limit] if limit is not None else found
    clauses, params = [], []
    if status is not None:
        clauses.append("status = %s")
        params.append(LetterStatus(status).value)
    if thread_id is not None:
        clauses.append("thread_id = %s")
        params.append(thread_id)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = f"SELECT {', '.join(COLUMNS)} FROM accord_dead_letters{where} ORDER BY created_at DESC"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    cur.execute(dialect.sql(sql), params)
    return [_letter(dialect, row) for row in cur.fetchall()]


def resolve_letter(dialect: Any, cur: Any, letter_id: str, status: LetterStatus,
                   resolution: str | None, now: datetime) -> bool:
    """Mark a dead letter retried or discarded; False when it is no longer ``dead``."""
    memory = _memory(dialect)
    if memory is not None:
        letter = memory.get(letter_id)
        if letter is None or letter.status is not LetterStatus.DEAD:
            return False
        memory[letter_id] = letter.model_copy(update={
            "status": status, "resolved_at": now.astimezone(UTC), "resolution": resolution})
        return True
    cur.execute(dialect.sql(
        "UPDATE accord_dead_letters SET status = %s, resolved_at = %s, resolution = %s"
        " WHERE id = %s AND status = %s RETURNING id"),
        (status.value, dialect.ts_in(now), resolution, letter_id, LetterStatus.DEAD.value))
    return cur.fetchone() is not None


__all__ = [
    "COLUMNS",
    "POSTGRES_DDL",
    "SQLITE_DDL",
    "DeadLetter",
    "DeadLetterCorrupt",
    "LetterReason",
    "LetterStatus",
    "get_letter",
    "insert_letter",
    "list_letters",
    "failure_fields",
    "new_letter_id",
    "resolve_letter",
]


def failure_fields(handle: Any, error: BaseException | None, cause: str,
                   node: str | None) -> dict[str, Any]:
    """A failed run's dead letter: the task it was on (from the run's last checkpoint), the
    node that failed, and what the error itself says (a refused handoff names its agent)."""
    values = handle.head_values or {}
    task_id = values.get("active_task") or handle.spec.task_id
    task = (values.get("tasks") or {}).get(task_id) if task_id else None
    payload = task if task is not None else (handle.recorded_input or handle.spec.input)
    previous = getattr(handle.previous, "head", None)
    fields: dict[str, Any] = {
        "thread_id": handle.thread_id, "checkpoint_id": handle.head or previous,
        "task_id": task_id, "node": node, "agent": None, "agent_version": None,
        "reason": LetterReason.FAILED, "error": cause, "payload": dialect_json(payload)}
    found = getattr(error, "dead_letter", None)
    if isinstance(found, dict):
        fields.update({k: v for k, v in found.items() if v is not None})
        fields["payload"] = dialect_json(fields.get("payload"))
    return fields
