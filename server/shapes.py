"""What the runs API answers with: JSON-safe thread state and thread summaries."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel

from accord.checkpoints import ThreadRecord


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (messages as ``{"type", "content", ...}`` dicts)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseMessage):
        return jsonable(value.model_dump(exclude_none=True))
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    inner = getattr(value, "value", None)  # a DeltaChannel / Overwrite wrapper
    if inner is not None and inner is not value:
        return jsonable(inner)
    return str(value)


def _kind(message: Any) -> str:
    if isinstance(message, HumanMessage):
        return "human"
    if isinstance(message, AIMessage):
        return "ai"
    if isinstance(message, ToolMessage):
        return "tool"
    return str(getattr(message, "type", "other"))


def values_summary(values: Mapping[str, Any]) -> dict[str, Any]:
    """A short view of a thread's latest values: the reply, counts, each task's status."""
    messages = list(values.get("messages") or [])
    reply = next((m.text for m in reversed(messages)
                  if isinstance(m, AIMessage) and m.text), None)
    tasks = values.get("tasks") or {}
    tasks = getattr(tasks, "value", tasks)
    return {
        "reply": reply,
        "messages": len(messages),
        "last_message": ({"type": _kind(messages[-1]), "text": messages[-1].text}
                         if messages and isinstance(messages[-1], BaseMessage) else None),
        "tasks": [{"id": task_id, "status": jsonable((task or {}).get("status")),
                   "agent": (task or {}).get("agent")}
                  for task_id, task in (tasks.items() if isinstance(tasks, Mapping) else [])],
        "errors": len(values.get("errors") or []),
    }


def thread_view(thread_id: str, record: ThreadRecord | None, *, status: str | None,
                values: Mapping[str, Any] | None, next_nodes: list[str],
                submit_error: str | None) -> dict[str, Any]:
    """``GET /api/threads/{id}``: the index record, the pending approval, the values' summary;
    ``status`` is the live one (``accord.server.executors.live_status``)."""
    queued = status == "queued"
    if record is None:
        return {"thread_id": thread_id, "status": status, "queued": queued,
                "graph": None, "pending": None, "error": submit_error, "values": None,
                "next": []}
    view = jsonable(record.as_dict())
    view.update({
        "status": status,
        "queued": queued,
        "epoch": record.epoch,
        "pending": jsonable(record.pending) if status == "interrupted" else None,
        "values": values_summary(values) if values else None,
        "next": next_nodes,
    })
    if submit_error and not view.get("error"):
        view["error"] = submit_error
    return view


__all__ = ["jsonable", "thread_view", "values_summary"]
