"""The `keep_latest` prune plan, shared by the SQLite and in-memory savers.

It keeps what `PostgresSaver.prune(strategy="keep_latest")` keeps, so every backend prunes alike:
per namespace the latest checkpoint (plus, for a pre-v4 checkpoint, the parent it reads pending
sends from) and its writes. A subgraph call's namespace (`name:task_id`) goes with the root
checkpoint it started from once that checkpoint is deleted. Threads that use a `DeltaChannel`
are refused, because their latest value is rebuilt from older checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.serde.types import _DeltaSnapshot

PRUNE_STRATEGIES = ("keep_latest", "delete")
"""The strategies `BaseCheckpointSaver.prune` defines."""

TASKS_CHANNEL = "__pregel_tasks"
"""The channel pre-v4 checkpoints keep pending sends in (langgraph's `TASKS`)."""

_DELTA_METADATA_KEYS = ("counters_since_delta_snapshot", "delta_writes_versioned")


@dataclass(frozen=True)
class CheckpointRow:
    """What the plan needs to know about one stored checkpoint."""

    checkpoint_ns: str
    """The namespace ('' for the root graph)."""
    checkpoint_id: str
    """The checkpoint's id (ids sort by time)."""
    parent_id: str | None
    """The parent checkpoint's id, if any."""
    version: int
    """The checkpoint format version (`checkpoint['v']`)."""
    root_id: str | None
    """For a subgraph checkpoint, the root graph checkpoint its call started from."""
    uses_delta: bool
    """Whether the checkpoint shows signs of a `DeltaChannel`."""


@dataclass(frozen=True)
class KeepPlan:
    """Which checkpoints of one thread survive `keep_latest`."""

    kept: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per namespace, the checkpoint ids kept."""
    dropped_namespaces: frozenset[str] = frozenset()
    """Subgraph-call namespaces deleted whole."""


def check_strategy(thread_ids: Iterable[str], strategy: str) -> list[str]:
    """Validate `prune`'s arguments the way `PostgresSaver.prune` does; return the ids as strs."""
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(f"Unknown prune strategy: {strategy!r}")
    return [str(t) for t in thread_ids]


def uses_delta(metadata: Mapping[str, Any] | None, values: Iterable[Any]) -> bool:
    """Whether a checkpoint's metadata or channel values show a `DeltaChannel`."""
    if metadata and any(k in metadata for k in _DELTA_METADATA_KEYS):
        return True
    return any(isinstance(v, _DeltaSnapshot) for v in values)


def refuse_delta(thread_ids: Iterable[str]) -> None:
    """Raise like the Postgres saver does for threads that use a `DeltaChannel`."""
    delta = sorted(set(thread_ids))
    if delta:
        raise NotImplementedError(
            f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(delta)}"
        )


def plan_keep_latest(
    rows: Iterable[CheckpointRow], has_sends: Callable[[str, str], bool]
) -> KeepPlan:
    """Plan `keep_latest` for one thread's checkpoints.

    `has_sends(ns, checkpoint_id)` says whether that checkpoint has writes to the tasks channel.
    """
    by_ns: dict[str, dict[str, CheckpointRow]] = {}
    for row in rows:
        by_ns.setdefault(row.checkpoint_ns, {})[row.checkpoint_id] = row
    kept: dict[str, frozenset[str]] = {}
    heads: dict[str, CheckpointRow] = {}
    for ns, ids in by_ns.items():
        head = ids[max(ids)]
        heads[ns] = head
        keep = {head.checkpoint_id}
        if head.version < 4 and head.parent_id and has_sends(ns, head.parent_id):
            keep.add(head.parent_id)
        kept[ns] = frozenset(keep)
    root_ids = set(by_ns.get("", {}))
    calls = frozenset(
        ns
        for ns, head in heads.items()
        if ":" in ns and head.root_id in root_ids and head.root_id not in kept.get("", frozenset())
    )
    return KeepPlan(
        kept={ns: ids for ns, ids in kept.items() if ns not in calls}, dropped_namespaces=calls
    )
