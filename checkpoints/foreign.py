"""Runs on a checkpointer that is not accord's (``InMemorySaver``, a platform's own saver).

The engine wraps it in :class:`JournaledSaver` for the duration of a run: the checkpoints go to
the wrapped saver unchanged, and accord's journal (thread index, audit log, tool ledger, locks,
fencing) is kept in this process's memory. That is enough for a notebook or a test; across
processes (several server replicas, a restart) only accord's own savers keep the guarantees,
which is why the engine logs a warning the first time it wraps a saver.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver

from accord.checkpoints.accord_saver import AccordSaver
from accord.checkpoints.memory import JournalInMemory

T = TypeVar("T")


class _Delegate(BaseCheckpointSaver):
    """Every saver method forwarded to ``inner``."""

    def __init__(self, inner: BaseCheckpointSaver) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner

    def get_tuple(self, config: Any) -> Any:
        return self.inner.get_tuple(config)

    def list(self, config: Any, *, filter: Any = None, before: Any = None,
             limit: int | None = None) -> Iterator[Any]:
        return self.inner.list(config, filter=filter, before=before, limit=limit)

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return self.inner.put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config: Any, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        self.inner.put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    def _prune_stored(self, thread_ids: list[str], strategy: str) -> None:
        self.inner.prune(thread_ids, strategy=strategy)

    def get_delta_channel_history(self, *, config: Any, channels: Sequence[str]) -> Any:
        return self.inner.get_delta_channel_history(config=config, channels=channels)

    def get_next_version(self, current: Any, channel: Any) -> Any:
        return self.inner.get_next_version(current, channel)


class JournaledSaver(JournalInMemory, AccordSaver, _Delegate):
    """A foreign saver with accord's journal kept in memory (see the module docstring)."""

    def __init__(self, inner: BaseCheckpointSaver) -> None:
        super().__init__(inner)
        self._init_journal()

    def _has_checkpoints(self, thread_id: str) -> bool:
        root = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        return self.inner.get_tuple(root) is not None

    def checkpoint_ids(self, thread_id: str) -> list[tuple[str, str | None]]:
        rows = self.inner.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        return [(t.config["configurable"]["checkpoint_id"],
                 (t.parent_config or {}).get("configurable", {}).get("checkpoint_id"))
                for t in rows]


_wrapped: weakref.WeakKeyDictionary[Any, JournaledSaver] = weakref.WeakKeyDictionary()
_wrapped_lock = threading.Lock()


def journaled(saver: BaseCheckpointSaver) -> JournaledSaver:
    """The one journaled wrapper of a foreign saver in this process."""
    with _wrapped_lock:
        found = _wrapped.get(saver)
        if found is None:
            found = _wrapped[saver] = JournaledSaver(saver)
        return found


__all__ = ["JournaledSaver", "journaled"]
