"""Time travel over a checkpointed thread: history, replay from a checkpoint, fork.

Replay and fork go through the engine like any run, so the thread index, locks and the audit
log follow them. A fork copies the chosen checkpoint (and its pending writes, so a pending
approval stays pending) into a new thread, with the conversation and any other
``DeltaChannel`` written out in full (the copy has no ancestors to rebuild them from), then
applies edits there: the original thread is untouched. History lists a checkpoint that cannot
be read instead of failing on it; replay and fork work from the intact ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.types import Command

from accord.checkpoints.errors import CheckpointError, CheckpointNotFound, ThreadNotFound
from accord.checkpoints.runs import RUN_KEY, RunKind, RunSpec


@dataclass(frozen=True)
class HistoryEntry:
    """One checkpoint of a thread, newest first in listings."""

    checkpoint_id: str
    """Id to pass to replay or fork."""
    step: int
    """Super-step number (-1 is the input)."""
    source: str
    """``input``, ``loop``, ``update`` or ``fork``."""
    node: str | None
    """The node whose writes this checkpoint holds (None for the input)."""
    next: tuple[str, ...]
    """Nodes due to run from here."""
    created_at: str
    """When it was written."""
    parent_id: str | None
    """The checkpoint it follows."""
    error: str | None = None
    """Why the checkpoint cannot be read, when it cannot."""

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "next": list(self.next)}


def _config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def history(graph: Any, thread_id: str) -> list[HistoryEntry]:
    """The thread's checkpoints, newest first (a corrupt one is listed with its error)."""
    saver = graph.checkpointer
    rows = await saver._offload(saver.checkpoint_ids, thread_id)
    if not rows:
        raise ThreadNotFound(f"unknown thread {thread_id!r}")
    snapshots: dict[str, Any] = {}
    for checkpoint_id, _ in rows:
        try:
            snapshots[checkpoint_id] = await graph.aget_state(_config(thread_id, checkpoint_id))
        except CheckpointError as exc:
            snapshots[checkpoint_id] = exc
    entries = []
    for checkpoint_id, parent_id in rows:
        snap = snapshots[checkpoint_id]
        parent = snapshots.get(parent_id) if parent_id else None
        node = ",".join(parent.next) if parent is not None and not isinstance(
            parent, Exception) and parent.next else None
        if isinstance(snap, Exception):
            entries.append(HistoryEntry(checkpoint_id, -1, "", node, (), "", parent_id,
                                        error=str(snap)))
            continue
        metadata = snap.metadata or {}
        entries.append(HistoryEntry(
            checkpoint_id=checkpoint_id, step=int(metadata.get("step", -1)),
            source=str(metadata.get("source", "")), node=node, next=tuple(snap.next),
            created_at=snap.created_at or "", parent_id=parent_id,
        ))
    return entries


async def checkpoint_config(graph: Any, thread_id: str, checkpoint_id: str) -> dict[str, Any]:
    """The config of one checkpoint; raises :class:`CheckpointNotFound`."""
    rows = await graph.checkpointer._offload(graph.checkpointer.checkpoint_ids, thread_id)
    if not rows:
        raise ThreadNotFound(f"unknown thread {thread_id!r}")
    if checkpoint_id not in {cid for cid, _ in rows}:
        raise CheckpointNotFound(f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}")
    return _config(thread_id, checkpoint_id)


async def replay(graph: Any, thread_id: str, checkpoint_id: str) -> AsyncIterator[dict[str, Any]]:
    """Re-run the thread from a checkpoint (a new branch of the same thread).

    Steps after the checkpoint run again; side-effecting tools keyed by idempotency key do
    not act twice.
    """
    config = await checkpoint_config(graph, thread_id, checkpoint_id)
    async for chunk in graph.astream(None, config, stream_mode="updates"):
        yield chunk


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse, text otherwise."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CheckpointError(f"--set expects key=value, got {pair!r}")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


def state_update(values: Mapping[str, Any], current: Mapping[str, Any], *, by: str) -> dict[str, Any]:
    """Turn ``context.KEY=value`` and top-level assignments into a state update."""
    update: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("context."):
            name = key.removeprefix("context.")
            base = (current.get("context") or {}).get(name, {}).get("version", 0)
            update.setdefault("context", {})[name] = {"value": value, "writer": by, "base_version": base}
        else:
            update[key] = value
    return update


async def fork(
    graph: Any,
    thread_id: str,
    checkpoint_id: str,
    new_thread_id: str,
    values: Mapping[str, Any] | None = None,
    *,
    by: str = "fork",
) -> dict[str, Any]:
    """Copy a checkpoint into ``new_thread_id`` and apply ``values`` there; returns its config."""
    source = await checkpoint_config(graph, thread_id, checkpoint_id)
    saver = graph.checkpointer
    if await saver.aget_tuple(_config(new_thread_id)) is not None:
        raise CheckpointError(f"thread {new_thread_id!r} already exists; choose a new id")
    found = await saver.aget_tuple(source)
    state = await graph.aget_state(source)
    delta = {k for k, ch in graph.channels.items() if isinstance(ch, DeltaChannel)}
    checkpoint = {**found.checkpoint, "channel_values": {
        **found.checkpoint["channel_values"],
        **{k: _DeltaSnapshot(state.values[k]) for k in delta if k in state.values},
    }}
    metadata = {**(found.metadata or {}), "source": "fork",
                "forked_from": f"{thread_id}:{checkpoint_id}"}
    metadata.pop("counters_since_delta_snapshot", None)
    versions = dict(checkpoint.get("channel_versions") or {})
    spec = RunSpec(thread_id=new_thread_id, kind=RunKind.UPDATE,
                   graph=graph.engine.graph_ref or graph.name,
                   triggers=frozenset(t for n in graph.nodes.values() for t in n.triggers))
    handle = await saver.abegin_run(spec)
    error: BaseException | None = None
    try:
        run = _config(new_thread_id)
        run["configurable"][RUN_KEY] = handle
        target = await saver.aput(run, checkpoint, metadata, versions)
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in found.pending_writes or []:
            by_task.setdefault(task_id, []).append((channel, value))
        for task_id, writes in by_task.items():
            await saver.aput_writes({"configurable": {**target["configurable"], RUN_KEY: handle}},
                                    writes, task_id)
    except BaseException as exc:
        error = exc
        raise
    finally:
        await saver.aend_run(handle, error)
    if values:
        snapshot = await graph.aget_state(target)
        producer = await _producer(graph, thread_id, checkpoint_id)
        if producer is None:
            raise CheckpointError("the input checkpoint cannot be edited; fork at a later checkpoint")
        update = state_update(values, snapshot.values, by=by)
        # Written as the node that produced the checkpoint, going on to the same next nodes,
        # so the fork continues exactly where the original stood.
        payload = Command(update=update, goto=list(snapshot.next)) if snapshot.next else update
        target = await graph.aupdate_state(target, payload, as_node=producer)
    return target


async def _producer(graph: Any, thread_id: str, checkpoint_id: str) -> str | None:
    for entry in await history(graph, thread_id):
        if entry.checkpoint_id == checkpoint_id:
            return entry.node.split(",")[0] if entry.node else None
    return None
