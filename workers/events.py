"""The events accord publishes (schema ``accord.event``, version 1), as consumers read them.

Each outbox row (``accord.checkpoints.outbox``) is one :class:`Event`; its JSON Schema ships in
the package (``accord/workers/schemas/event.v1.json``, :func:`schema_path`). ``event_id`` is
stable across redeliveries: a consumer that has seen it may drop the message.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["task.started", "task.completed", "task.failed", "task.dead_lettered",
                    "approval.requested", "approval.decided", "thread.completed",
                    "thread.failed"]


class Event(BaseModel):
    """One thing that happened in a thread, for other systems."""

    model_config = ConfigDict(extra="forbid", title="accord.event")

    schema_: Literal["accord.event"] = Field("accord.event", alias="schema")
    """The schema's name."""
    version: Literal[1] = 1
    """The schema's version: a consumer refuses versions it does not know."""
    event_id: str = Field(min_length=1)
    """Stable id: the same event delivered twice carries the same id."""
    type: EventType
    """What happened (see ``accord.checkpoints.outbox``)."""
    thread_id: str
    """The thread it happened in."""
    run_id: str | None = None
    """The run that wrote it."""
    graph: str | None = None
    """The thread's graph."""
    occurred_at: str
    """When (ISO 8601, UTC)."""
    agent: str | None = None
    """The agent concerned, when one is."""
    node: str | None = None
    """The graph node concerned, when one is."""
    task_id: str | None = None
    """The task concerned, when one is."""
    data: dict[str, Any] = Field(default_factory=dict)
    """What the type adds (a route's target, a decision, the pending approval, an error)."""


def event_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Event`."""
    return Event.model_json_schema(by_alias=True)


def schema_path() -> Path:
    """The published schema file."""
    return Path(str(resources.files("accord.workers") / "schemas" / "event.v1.json"))


def write_schema(path: Path | None = None) -> Path:
    """Write the schema file from the model (kept in the repository beside the code)."""
    target = path or schema_path()
    target.write_text(json.dumps(event_schema(), indent=2, sort_keys=True) + "\n")
    return target


__all__ = ["Event", "EventType", "event_schema", "schema_path", "write_schema"]
