"""`InMemorySaver` with `prune`, so `memory://` supports what the other backends do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from accord.checkpoints.keep_latest import (
    TASKS_CHANNEL,
    CheckpointRow,
    check_strategy,
    plan_keep_latest,
    refuse_delta,
    uses_delta,
)


class PruningInMemorySaver(InMemorySaver):
    """The stock in-memory saver plus `prune` / `aprune` (`keep_latest` and `delete`)."""

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the threads' checkpoints; see `accord.checkpoints.keep_latest` for what is kept."""
        ids = check_strategy(thread_ids, strategy)
        if strategy == "delete":
            for thread_id in ids:
                self.delete_thread(thread_id)
            return
        refuse_delta(t for t in ids if self._thread_uses_delta(t))
        for thread_id in ids:
            self._keep_latest(thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async twin of `prune`."""
        self.prune(thread_ids, strategy=strategy)

    def _rows(self, thread_id: str) -> list[CheckpointRow]:
        rows = []
        for ns, saved in self.storage.get(thread_id, {}).items():
            for cid, (cp, meta, parent) in saved.items():
                checkpoint = self.serde.loads_typed(cp)
                metadata = self.serde.loads_typed(meta) or {}
                rows.append(
                    CheckpointRow(
                        checkpoint_ns=ns,
                        checkpoint_id=cid,
                        parent_id=parent,
                        version=int(checkpoint.get("v", 1)),
                        root_id=(metadata.get("parents") or {}).get(""),
                        uses_delta=uses_delta(metadata, ()),
                    )
                )
        return rows

    def _thread_uses_delta(self, thread_id: str) -> bool:
        if any(r.uses_delta for r in self._rows(thread_id)):
            return True
        blobs = [v for k, v in self.blobs.items() if k[0] == thread_id]
        return uses_delta(None, (self.serde.loads_typed(b) for b in blobs if b[0] != "empty"))

    def _has_sends(self, thread_id: str, ns: str, checkpoint_id: str) -> bool:
        writes = self.writes.get((thread_id, ns, checkpoint_id), {})
        return any(w[1] == TASKS_CHANNEL for w in writes.values())

    def _keep_latest(self, thread_id: str) -> None:
        plan = plan_keep_latest(
            self._rows(thread_id), lambda ns, cid: self._has_sends(thread_id, ns, cid)
        )
        namespaces = self.storage.get(thread_id, {})
        for ns in plan.dropped_namespaces:
            namespaces.pop(ns, None)
            self._drop(lambda k, ns=ns: k[0] == thread_id and k[1] == ns)
        for ns, keep in plan.kept.items():
            saved = namespaces[ns]
            gone = [cid for cid in saved if cid not in keep]
            for cid in gone:
                del saved[cid]
                self.writes.pop((thread_id, ns, cid), None)
            for cid in keep:
                cp, meta, parent = saved[cid]
                if parent is not None and parent not in keep:
                    saved[cid] = (cp, meta, None)
            referenced: set[tuple[str, Any]] = set()
            for cp, _meta, _parent in saved.values():
                versions = self.serde.loads_typed(cp).get("channel_versions", {})
                referenced.update(versions.items())
            self._drop(
                lambda k, ns=ns, referenced=referenced: (
                    k[0] == thread_id and k[1] == ns and (k[2], k[3]) not in referenced
                ),
                writes=False,
            )

    def _drop(self, match: Any, *, writes: bool = True) -> None:
        if writes:
            for key in [k for k in self.writes if match(k)]:
                del self.writes[key]
        for key in [k for k in self.blobs if match(k)]:
            del self.blobs[key]
