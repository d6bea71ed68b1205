"""Compaction: a thread kept to its latest checkpoint, its delta channels written out in full.

LangGraph's ``keep_latest`` prune refuses threads that use a ``DeltaChannel`` (their latest value
is rebuilt from older checkpoints' writes). accord's conversation is one, so accord compacts
instead: under the thread's lock, the latest checkpoint is rewritten with a full snapshot of each
delta channel (folded with the channel's reducer) and its pending writes, and everything older
goes, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.graph.message import _messages_delta_reducer

from accord.checkpoints.errors import CheckpointError
from accord.checkpoints.runs import PendingPut, PendingWrites

DELTA_REDUCERS: dict[str, Callable[..., Any]] = {"messages": _messages_delta_reducer}
"""How a delta channel's writes fold into its value: accord's conversation by default."""


def delta_channels(found: Any) -> set[str]:
    """The delta channels a checkpoint shows (its counters, or a snapshot it holds)."""
    counters = (found.metadata or {}).get("counters_since_delta_snapshot") or {}
    snapshots = {k for k, v in found.checkpoint["channel_values"].items()
                 if isinstance(v, _DeltaSnapshot)}
    return set(counters) | snapshots


def _snapshot(saver: Any, head: Any, channels: set[str],
              reducers: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    values = dict(head.checkpoint["channel_values"])
    missing = [c for c in channels if c not in values]
    history = saver.get_delta_channel_history(config=head.config, channels=missing) if (
        missing) else {}
    for channel in channels:
        if channel in values:
            current = values[channel]
            if not isinstance(current, _DeltaSnapshot):
                values[channel] = _DeltaSnapshot(current)
            continue
        entry = history.get(channel) or {}
        seed = entry.get("seed")
        seed = seed.value if isinstance(seed, _DeltaSnapshot) else (seed or [])
        writes = [write[2] for write in entry.get("writes") or ()]
        values[channel] = _DeltaSnapshot(reducers[channel](list(seed), writes))
    return values


def compact(saver: Any, thread_id: str, reducers: Mapping[str, Callable[..., Any]] | None = None,
            *, wait: float = 0.0) -> bool:
    """Keep only the thread's latest checkpoint, its delta channels written out in full.

    Returns False (nothing done) for a thread that uses no ``DeltaChannel``. ``reducers`` says
    how to fold each delta channel's writes (default: accord's conversation). Runs under the
    thread's lock, in one transaction.
    """
    reducers = dict(DELTA_REDUCERS if reducers is None else reducers)
    root = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    head = saver.get_tuple(root)
    if head is None or not delta_channels(head):
        return False
    unknown = delta_channels(head) - set(reducers)
    if unknown:
        raise CheckpointError(f"thread {thread_id!r}: no reducer known for delta channel(s) "
                              f"{', '.join(sorted(unknown))}; pass reducers=...")
    token = saver._hold(thread_id, wait)
    try:
        head = saver.get_tuple(root)  # again, under the lock
        checkpoint = {**head.checkpoint,
                      "channel_values": _snapshot(saver, head, delta_channels(head), reducers)}
        metadata = {k: v for k, v in (head.metadata or {}).items()
                    if k != "counters_since_delta_snapshot"}
        versions = dict(checkpoint.get("channel_versions") or {})
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in head.pending_writes or ():
            by_task.setdefault(task_id, []).append((channel, value))

        def body(cur: Any) -> None:
            saver.delete_thread(thread_id)
            saver._store(cur, PendingPut(root, checkpoint, metadata, versions))
            for task_id, writes in by_task.items():
                saver._store(cur, PendingWrites(head.config, writes, task_id, ""))

        saver._transaction(None, body)
    finally:
        saver._unhold(token)
    return True


__all__ = ["DELTA_REDUCERS", "compact", "delta_channels"]
