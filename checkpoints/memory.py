"""accord's in-memory saver: ``InMemorySaver`` with runs and ``prune``, so ``memory://``
supports what the other backends do (within one process)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from langgraph.checkpoint.memory import InMemorySaver

from accord.checkpoints.accord_saver import AccordSaver
from accord.checkpoints.journal import Claim, ClaimRule
from accord.checkpoints.keep_latest import (
    TASKS_CHANNEL,
    CheckpointRow,
    plan_keep_latest,
    refuse_delta,
    uses_delta,
)
from accord.checkpoints.locks import ProcessLocks
from accord.checkpoints.runs import RunHandle, RunKind, RunSpec
from accord.checkpoints.threads import ThreadRecord
from accord.records import AuditEvent, ThreadStatus

T = TypeVar("T")


class MemoryJournal:
    """accord's tables as dicts (the same operations as ``journal.Dialect``)."""

    name = "memory"

    def __init__(self) -> None:
        self.threads: dict[str, ThreadRecord] = {}
        self.events: dict[str, dict[str, tuple[str | None, dict[str, Any]]]] = {}
        self.ledger: dict[tuple[str, str], str] = {}
        self.vault: dict[str, dict[str, str]] = {}
        """Thread -> PII placeholder -> real value (``accord.guardrails.vault``)."""
        self.letters: dict[str, Any] = {}
        """Dead letters by id (``accord.checkpoints.letters``)."""
        self.outbox: dict[str, dict[str, Any]] = {}
        """Outbox events by id (``accord.checkpoints.outbox``; nothing relays them)."""

    def read_thread(self, _cur: Any, thread_id: str) -> ThreadRecord | None:
        return self.threads.get(thread_id)

    def claim(self, spec: RunSpec, rule: ClaimRule, has_checkpoints: bool, now: datetime) -> Claim:
        previous = self.threads.get(spec.thread_id)
        has_ledger = any(t == spec.thread_id for t, _ in self.ledger)
        if not rule.allows(previous, has_checkpoints, spec.expect_epoch):
            return Claim(None, previous, previous.input if previous else None, has_checkpoints,
                         has_ledger)
        recorded = spec.input if spec.input is not None else (previous.input if previous else None)
        keep = spec.kind == RunKind.RESUME and previous is not None
        record = ThreadRecord(
            thread_id=spec.thread_id,
            graph=spec.graph or (previous.graph if previous else None),
            status=previous.status if keep else ThreadStatus.RUNNING,
            pending=previous.pending if keep else None,
            created_at=previous.created_at if previous else now,
            updated_at=now,
            head=previous.head if previous else None,
            epoch=(previous.epoch if previous else 0) + 1,
            run_id=spec.run_id,
            input=json.loads(json.dumps(recorded, default=str)) if recorded is not None else None,
            trace=spec.trace or (previous.trace if previous else None),
        )
        self.threads[spec.thread_id] = record
        return Claim(record.epoch, previous, record.input, has_checkpoints, has_ledger)

    def upsert_thread(self, _cur: Any, thread_id: str, graph: str | None, status: ThreadStatus,
                      pending: Any, now: datetime) -> ThreadRecord:
        old = self.threads.get(thread_id)
        record = ThreadRecord(
            thread_id=thread_id, graph=graph if graph is not None else (old.graph if old else None),
            status=status, created_at=old.created_at if old else now, updated_at=now,
            pending=pending, error=old.error if old else None, head=old.head if old else None,
            epoch=old.epoch if old else 0, run_id=old.run_id if old else None,
            input=old.input if old else None, trace=old.trace if old else None)
        self.threads[thread_id] = record
        return record

    def fence(self, _cur: Any, thread_id: str, epoch: int, head: str | None, input_saved: bool,
              now: datetime) -> bool:
        record = self.threads.get(thread_id)
        if record is None or record.epoch != epoch:
            return False
        self.threads[thread_id] = replace(record, head=head or record.head, updated_at=now,
                                          status=ThreadStatus.RUNNING, pending=None,
                                          input=None if input_saved else record.input)
        return True

    def finish(self, _cur: Any, thread_id: str, epoch: int, status: ThreadStatus, pending: Any,
               error: str | None, now: datetime) -> bool:
        record = self.threads.get(thread_id)
        if record is None or record.epoch != epoch:
            return False
        self.threads[thread_id] = replace(record, status=status, pending=pending, error=error,
                                          run_id=None, updated_at=now)
        return True

    def insert_outbox(self, _cur: Any, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.outbox.setdefault(event["event_id"], json.loads(json.dumps(event, default=str)))

    def insert_events(self, _cur: Any, thread_id: str, events: Any) -> None:
        log = self.events.setdefault(thread_id, {})
        for checkpoint_id, event in events:
            log.setdefault(event["id"], (checkpoint_id, json.loads(json.dumps(event, default=str))))

    def audit(self, _cur: Any, thread_id: str) -> list[AuditEvent]:
        return [AuditEvent.model_validate(e) for _, e in self.events.get(thread_id, {}).values()]

    def record_result(self, _cur: Any, thread_id: str, key: str, tool: str, text: str,
                      now: datetime) -> None:
        self.ledger.setdefault((thread_id, key), text)

    def recall_result(self, _cur: Any, thread_id: str, key: str) -> str | None:
        return self.ledger.get((thread_id, key))

    def list_threads(self, _cur: Any, status: Any, limit: int | None,
                     updated_before: datetime | None) -> list[ThreadRecord]:
        rows = [r for r in self.threads.values()
                if (status is None or r.status == ThreadStatus(status))
                and (updated_before is None or r.updated_at < updated_before)]
        rows.sort(key=lambda r: r.updated_at, reverse=True)
        return rows[:limit] if limit is not None else rows

    def delete_threads(self, _cur: Any, thread_ids: Sequence[str]) -> int:
        gone = sum(self.threads.pop(t, None) is not None for t in thread_ids)
        for thread_id in thread_ids:
            self.events.pop(thread_id, None)
            self.vault.pop(thread_id, None)
        self.letters = {k: v for k, v in self.letters.items() if v.thread_id not in set(thread_ids)}
        self.ledger = {k: v for k, v in self.ledger.items() if k[0] not in set(thread_ids)}
        return gone


class JournalInMemory:
    """accord's journal kept in this process: for ``memory://`` and for foreign savers."""

    def _init_journal(self) -> None:
        self.dialect = MemoryJournal()
        self._journal_lock = threading.RLock()
        self._locks = ProcessLocks()

    def _has_checkpoints(self, thread_id: str) -> bool:
        raise NotImplementedError

    def _transaction(self, handle: RunHandle | None, body: Callable[[Any], T]) -> T:
        with self._journal_lock:
            return body(None)

    def _read(self, body: Callable[[Any], T]) -> T:
        with self._journal_lock:
            return body(None)

    def _claim_held(self, spec: RunSpec, rule: ClaimRule) -> Claim:
        saved = self._has_checkpoints(spec.thread_id)
        with self._journal_lock:
            return self.dialect.claim(spec, rule, saved, self.clock())  # type: ignore[attr-defined]


class AccordMemorySaver(JournalInMemory, AccordSaver, InMemorySaver):
    """The stock in-memory saver plus accord's runs, tables and ``prune``."""

    def __init__(self) -> None:
        super().__init__()
        self._init_journal()

    async def _offload(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)  # nothing blocks

    def _has_checkpoints(self, thread_id: str) -> bool:
        return any(self.storage.get(thread_id, {}).get("", {}))

    def checkpoint_ids(self, thread_id: str) -> list[tuple[str, str | None]]:
        saved = self.storage.get(thread_id, {}).get("", {})
        return sorted(((cid, parent) for cid, (_, _, parent) in saved.items()), reverse=True)

    def _prune_stored(self, thread_ids: list[str], strategy: str) -> None:
        if strategy == "delete":
            for thread_id in thread_ids:
                self.delete_thread(thread_id)
            return
        refuse_delta(t for t in thread_ids if self._thread_uses_delta(t))
        for thread_id in thread_ids:
            self._keep_latest(thread_id)

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
