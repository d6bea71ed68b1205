"""The shared state of every accord workflow and the reducers that merge its writes.

Values are plain JSON-compatible dicts and lists, so checkpoints stay portable between
savers, the LangGraph dev server, Studio and the SDK without custom serialisation.

A checkpoint's size does not depend on how long its thread has lived:

- ``messages`` is a LangGraph ``DeltaChannel``: each checkpoint stores only the step's new
  messages (a full snapshot every ``MESSAGE_SNAPSHOT_EVERY`` updates), not the conversation;
- ``audit``, ``errors`` and ``outputs`` hold the current request only; every audit event is
  copied to the audit log (``accord_audit``) in the transaction of the step that produced it;
- ``tasks`` holds open tasks and the finished ones of the request in progress; a finished
  task's final record (its reply and structured output) is in the audit log
  (``task_finished``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.config import get_config
from langgraph.graph.message import _messages_delta_reducer

from accord.errors import AccordError
from accord.records import TaskStatus, audit_event, utcnow

HOPS_RESET = "reset"

MESSAGE_SNAPSHOT_EVERY = 200
"""Message updates between two full snapshots of the conversation in a checkpoint."""

FINISHED_TASKS_KEPT = 0
"""Finished tasks of earlier requests a thread's state keeps; all of them are in the audit log."""


class TaskRecord(TypedDict, total=False):
    id: str
    query: str
    agent: str | None
    status: str
    created_at: str
    updated_at: str
    result: str | None
    handoff_to: str | None
    reviews: list[dict[str, Any]]


class ContextEntry(TypedDict, total=False):
    value: Any
    version: int
    writer: str
    updated_at: str


class ContextConflict(AccordError):
    """Two writers changed one shared-context key from the same version without a merge rule."""


def merge_records(
    current: dict[str, Any] | None, update: dict[str, Any] | None
) -> dict[str, Any]:
    """Merge records by id; a record's fields are updated, not replaced; ``None`` deletes it."""
    merged = dict(current or {})
    for key, value in (update or {}).items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def append_list(current: list[Any] | None, update: list[Any] | Any | None) -> list[Any]:
    """Append-only reducer (a request starts afresh with ``langgraph.types.Overwrite``)."""
    if update is None:
        return list(current or [])
    items = update if isinstance(update, list) else [update]
    return [*(current or []), *items]


def count_hops(current: int | None, update: int | str | None) -> int:
    """Add hops; the router writes ``HOPS_RESET`` (the first hop of a new run) for a new request."""
    if update == HOPS_RESET:
        return 1
    return (current or 0) + int(update or 0)


CONTEXT_MERGES: dict[str, Any] = {
    "last_write_wins": lambda old, new: new,
    "append": lambda old, new: [*(old if isinstance(old, list) else [old]), *new]
    if isinstance(new, list)
    else [*(old if isinstance(old, list) else [old]), new],
    "max": max,
    "min": min,
    "sum": lambda old, new: old + new,
    "union": lambda old, new: sorted(set(old) | set(new)),
}


def merge_context(
    current: dict[str, ContextEntry] | None, update: dict[str, dict[str, Any]] | None
) -> dict[str, ContextEntry]:
    """Versioned shared context.

    A write is ``{"value": v, "writer": id, "base_version": n, "merge": name}``. A write whose
    ``base_version`` is older than the stored version met a concurrent writer: it is merged
    with the declared merge function, or raises :class:`ContextConflict` when none is
    declared. ``merge="last_write_wins"`` must be declared to get silent overwrite.
    A ``None`` write deletes the key (used by expiry).
    """
    merged = dict(current or {})
    for key, write in (update or {}).items():
        if write is None:
            merged.pop(key, None)
            continue
        old = merged.get(key)
        old_version = old["version"] if old else 0
        base = write.get("base_version", old_version)
        value = write["value"]
        if old is not None and base < old_version:
            how = write.get("merge")
            if how is None:
                raise ContextConflict(
                    f"context key {key!r}: {write.get('writer')} wrote from version {base} "
                    f"but {old.get('writer')} already wrote version {old_version}; "
                    "declare a merge function for this key"
                )
            value = CONTEXT_MERGES[how](old["value"], value)
        merged[key] = {
            "value": value,
            "version": old_version + 1,
            "writer": write.get("writer", "?"),
            "updated_at": write.get("updated_at") or utcnow(),
        }
    return merged


class WorkflowState(TypedDict, total=False):
    """State shared by every node of an accord workflow."""

    messages: Annotated[
        list[AnyMessage],
        DeltaChannel(_messages_delta_reducer, snapshot_frequency=MESSAGE_SNAPSHOT_EVERY),
    ]
    tasks: Annotated[dict[str, TaskRecord], merge_records]
    outputs: Annotated[dict[str, Any], merge_records]
    context: Annotated[dict[str, ContextEntry], merge_context]
    audit: Annotated[list[dict[str, Any]], append_list]
    errors: Annotated[list[dict[str, Any]], append_list]
    pending: dict[str, Any] | None
    active_task: str | None
    hops: Annotated[int, count_hops]
    versions: Annotated[dict[str, str], merge_records]
    """The agent versions the thread is pinned to (agent id -> version), kept across requests."""


class InputState(TypedDict):
    """What a caller sends: the LangGraph ``messages`` convention."""

    messages: Annotated[
        list[AnyMessage],
        DeltaChannel(_messages_delta_reducer, snapshot_frequency=MESSAGE_SNAPSHOT_EVERY),
    ]


def thread_id() -> str:
    """The running node's thread id."""
    return str(get_config().get("configurable", {}).get("thread_id", ""))


def latest_request(state: Mapping[str, Any]) -> HumanMessage | None:
    """The last human message: the request being worked on."""
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message
    return None


def retired_tasks(tasks: Mapping[str, Any], keep: int = FINISHED_TASKS_KEPT) -> dict[str, None]:
    """Deletions for finished tasks beyond the ``keep`` most recent (they are in the audit log)."""
    finished = [t for t in tasks.values() if TaskStatus(t.get("status", "pending")).finished]
    finished.sort(key=lambda t: t.get("updated_at") or "")
    return {t["id"]: None for t in finished[: max(0, len(finished) - keep)] if t.get("id")}


def expired_context(context: Mapping[str, Any], ttl: timedelta | None, now: str) -> dict[str, None]:
    """Deletions for shared-context entries older than ``ttl`` (``now`` minus ttl is the cutoff)."""
    if ttl is None:
        return {}
    from datetime import datetime

    cutoff = (datetime.fromisoformat(now) - ttl).isoformat(timespec="milliseconds")
    return {k: None for k, e in context.items() if e.get("updated_at", "") < cutoff}


__all__ = [
    "CONTEXT_MERGES",
    "HOPS_RESET",
    "ContextConflict",
    "InputState",
    "TaskRecord",
    "WorkflowState",
    "append_list",
    "audit_event",
    "count_hops",
    "expired_context",
    "latest_request",
    "merge_context",
    "merge_records",
    "retired_tasks",
    "thread_id",
    "utcnow",
]
