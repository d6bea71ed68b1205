"""The shared state of every accord workflow and the reducers that merge its writes.

Values are plain JSON-compatible dicts and lists, so checkpoints stay portable between
savers, the LangGraph dev server, Studio and the SDK without custom serialisation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from accord.graphs.errors import AccordError

TaskStatus = Literal["pending", "in_progress", "awaiting_approval", "completed", "failed"]
TASK_STATUSES: tuple[str, ...] = (
    "pending",
    "in_progress",
    "awaiting_approval",
    "completed",
    "failed",
)
FINISHED_STATUSES = frozenset({"completed", "failed"})
HOPS_RESET = "reset"


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string (what state and audit records store)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class TaskRecord(TypedDict, total=False):
    id: str
    query: str
    agent: str | None
    status: TaskStatus
    created_at: str
    updated_at: str
    result: str | None
    handoff_to: str | None


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
    """Merge records by id; a record's fields are updated, not replaced wholesale."""
    merged = dict(current or {})
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def append_list(current: list[Any] | None, update: list[Any] | Any | None) -> list[Any]:
    """Append-only log reducer."""
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

    messages: Annotated[list[AnyMessage], add_messages]
    tasks: Annotated[dict[str, TaskRecord], merge_records]
    outputs: Annotated[dict[str, Any], merge_records]
    context: Annotated[dict[str, ContextEntry], merge_context]
    audit: Annotated[list[dict[str, Any]], append_list]
    errors: Annotated[list[dict[str, Any]], append_list]
    pending: dict[str, Any] | None
    active_task: str | None
    hops: Annotated[int, count_hops]


class InputState(TypedDict):
    """What a caller sends: the LangGraph ``messages`` convention."""

    messages: Annotated[list[AnyMessage], add_messages]


def audit_event(kind: str, **fields: Any) -> dict[str, Any]:
    """One audit-trail record."""
    return {"kind": kind, "at": utcnow(), **fields}
