"""accord's saver: a LangGraph checkpointer that also knows runs.

Every backend (``sqlite.py``, ``postgres.py``, ``memory.py``) is the stock LangGraph saver
with this mixin in front. Outside a run it behaves exactly like the stock saver. Inside a run
(a config that carries a :class:`~accord.checkpoints.runs.RunHandle`) it:

- claims the thread first (``begin_run``): the thread lock, the fencing token, the request
  recorded before work starts, and the check that the thread may take this kind of run;
- writes each step when its side effects require it (see ``runs.py``), refusing the write
  with :class:`WriterFenced` once another run has claimed the thread;
- writes, in the same transaction as the checkpoint, the step's new audit events and the
  thread index's new head;
- records tool results in the ledger the moment they exist (``ledger_record``);
- ends the run (``end_run``): the final status, the pending approval or the cause of failure,
  in the transaction that writes the last checkpoint.

The logic is written once, synchronously; the async methods run it on a small thread pool,
so one saver serves ``invoke`` and ``ainvoke``, notebooks and servers, on any event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import psycopg
from langgraph._internal._constants import ERROR

from accord.checkpoints.audit import AuditAccess
from accord.checkpoints.compact import compact
from accord.checkpoints.errors import CheckpointError, CorruptCheckpoint, WriterFenced
from accord.checkpoints.journal import CLAIM_RULES, Claim, ClaimRule
from accord.checkpoints.keep_latest import check_strategy
from accord.checkpoints.ledger import LedgerAccess
from accord.checkpoints.letters import LetterReason, failure_fields, insert_letter
from accord.checkpoints.outbox import end_event, step_events
from accord.checkpoints.runs import (
    RUN_KEY,
    PendingPut,
    PendingResult,
    PendingWrites,
    RunHandle,
    RunKind,
    RunSpec,
    interrupt_payloads,
)
from accord.checkpoints.threads import SaverThreads, utc_now
from accord.errors import AccordError
from accord.observability.events import events_committed, run_ended
from accord.records import AuditKind, ThreadStatus, audit_event

T = TypeVar("T")

AUDIT_CHANNEL = "audit"
"""The state key whose new events are copied to the audit log with each checkpoint."""

STOPPED = (GeneratorExit, asyncio.CancelledError, KeyboardInterrupt)
"""Ways a run stops without failing: the caller stopped reading, cancelled or interrupted it."""

DRIVER_ERRORS = (psycopg.Error, sqlite3.Error)
"""Database errors: the database's trouble, not a stored value's."""


class ClaimRefused(CheckpointError):
    """The thread's state does not admit this kind of run (the engine says why)."""

    def __init__(self, claim: Claim, spec: RunSpec) -> None:
        self.claim = claim
        self.spec = spec
        status = claim.previous.status.value if claim.previous else "unknown"
        super().__init__(f"thread {spec.thread_id!r} ({status}) does not admit a {spec.kind} run")


@dataclass(frozen=True)
class RunEnd:
    """How a run left its thread."""

    status: ThreadStatus
    """The thread's status now."""
    pending: Any = None
    """The pending interrupt's payload, for ``interrupted``."""
    error: str | None = None
    """The cause, for ``failed``."""


def run_of(config: dict[str, Any] | None) -> RunHandle | None:
    """The run handle a config carries (root namespace only)."""
    configurable = (config or {}).get("configurable") or {}
    handle = configurable.get(RUN_KEY)
    if isinstance(handle, RunHandle) and not configurable.get("checkpoint_ns"):
        return handle
    return None


def _latest_stand_in(config: Any, ids: list[tuple[str, str | None]]) -> Any:
    """The id of a thread's latest checkpoint, where that checkpoint itself cannot be read."""
    from langgraph.checkpoint.base import CheckpointTuple, empty_checkpoint

    checkpoint = {**empty_checkpoint(), "id": ids[0][0]} if ids else empty_checkpoint()
    return CheckpointTuple(config, checkpoint, {}, None, [])


def cause_of(error: BaseException) -> str:
    """One line saying why a run failed."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, AccordError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class AccordSaver(LedgerAccess, AuditAccess):
    """The run-aware part of every accord saver (mixed in before the stock saver)."""

    dialect: Any
    """The journal's SQL (or the in-memory journal)."""
    clock: Callable[[], datetime] = staticmethod(utc_now)
    """What 'now' is for the thread index and the ledger (tests replace it)."""
    _executor: ThreadPoolExecutor | None = None

    # backend hooks ------------------------------------------------------------------------
    def _claim(self, spec: RunSpec, rule: ClaimRule) -> tuple[Claim, Any]:
        """Take the thread's lock (waiting up to ``spec.wait``) and claim it; the lock is
        released again when the thread's state refuses the run."""
        token = self._locks.acquire(spec.thread_id, spec.wait)  # type: ignore[attr-defined]
        try:
            claim = self._claim_held(spec, rule)
        except BaseException:
            self._locks.release(token)  # type: ignore[attr-defined]
            raise
        if claim.epoch is None:
            self._locks.release(token)  # type: ignore[attr-defined]
        return claim, token

    def _claim_held(self, spec: RunSpec, rule: ClaimRule) -> Claim:
        """Claim the thread whose lock this process holds."""
        raise NotImplementedError

    def _release(self, handle: RunHandle) -> None:
        """Release the thread's lock."""
        self._locks.release(handle.backend)  # type: ignore[attr-defined]

    def _transaction(self, handle: RunHandle | None, body: Callable[[Any], T]) -> T:
        """Run ``body(cursor)`` in one write transaction (stock writes inside it join it)."""
        raise NotImplementedError

    def _read(self, body: Callable[[Any], T]) -> T:
        """``body(cursor)`` reading accord's tables (a backend may repeat it on a dropped
        connection: reads are safe to repeat)."""
        raise NotImplementedError

    def _final_transaction(self, handle: RunHandle, body: Callable[[Any], T]) -> T:
        """The transaction that ends a run (a backend may release the lock in it)."""
        return self._transaction(handle, body)

    def _read_together(self, body: Callable[[], T]) -> T:
        """Run several stock reads as one (a backend may put them in one transaction)."""
        return body()

    def _hold(self, thread_id: str, wait: float) -> Any:
        """Take the thread's lock without claiming the thread (maintenance)."""
        return self._locks.acquire(thread_id, wait)  # type: ignore[attr-defined]

    def _unhold(self, token: Any) -> None:
        self._locks.release(token)  # type: ignore[attr-defined]

    def _prune_stored(self, thread_ids: list[str], strategy: str) -> None:
        """The backend's own prune of checkpoints, writes and blobs."""
        raise NotImplementedError

    def _store(self, cursor: Any, op: PendingPut | PendingWrites) -> None:
        """Write a held checkpoint or task's writes with the stock saver's SQL."""
        if isinstance(op, PendingPut):
            super().put(op.config, op.checkpoint, op.metadata, op.new_versions)  # type: ignore[misc]
        else:
            super().put_writes(op.config, op.writes, op.task_id, op.task_path)  # type: ignore[misc]

    async def _offload(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking saver work off the event loop."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="accord-saver")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(fn, *args, **kwargs)
        )

    def close_executor(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # runs ---------------------------------------------------------------------------------
    def begin_run(self, spec: RunSpec) -> RunHandle:
        """Claim the thread for a run; raises ``ThreadBusy`` or :class:`ClaimRefused`."""
        claim, token = self._claim(spec, CLAIM_RULES[spec.kind])
        if claim.epoch is None:
            raise ClaimRefused(claim, spec)
        return RunHandle(spec=spec, epoch=claim.epoch, previous=claim.previous,
                         recorded_input=claim.recorded_input,
                         has_checkpoints=claim.has_checkpoints, has_ledger=claim.has_ledger,
                         backend=token, saver=self)

    def end_run(self, handle: RunHandle, error: BaseException | None = None) -> RunEnd | None:
        """Write what the run held back and how it ended; release the thread.

        Returns None when the run had lost its thread (nothing is written then).
        """
        with handle.lock:
            if handle.ended:
                return None
            handle.ended = True
            try:
                if handle.fenced or isinstance(error, WriterFenced):
                    return None
                end = self._outcome(handle, error)
                failed = end.status is ThreadStatus.FAILED
                failed_at = self._failed_node(handle) if failed else None
                letter = failure_fields(handle, error, end.error or "", failed_at) if failed else None
                written: list[dict[str, Any]] = []

                def finish(cur: Any, now: datetime) -> None:
                    if not self.dialect.finish(cur, handle.thread_id, handle.epoch, end.status,
                                               end.pending, end.error, now):
                        handle.fenced = True
                        raise WriterFenced(handle.thread_id, handle.epoch)
                    if letter is not None:  # the failed work is kept, with the failure
                        stored = insert_letter(self.dialect, cur, letter, now)
                        events = [
                            audit_event(AuditKind.RUN_FAILED, node=failed_at, error=end.error,
                                        letter=stored.id),
                            audit_event(AuditKind.DEAD_LETTERED, node=stored.node,
                                        agent=stored.agent, task_id=stored.task_id,
                                        letter=stored.id, reason=stored.reason.value,
                                        error=stored.error),
                        ]
                        written[:] = events
                        self.dialect.insert_events(cur, handle.thread_id,
                                                   [(handle.head, e) for e in events])
                    ended = end_event(handle, end.status, end.pending, end.error)
                    self.dialect.insert_outbox(cur, [  # what others hear of it, with it
                        *step_events(handle, handle.thread_id,
                                     [(handle.head, e) for e in written]),
                        *([ended] if ended is not None else [])])

                self._flush(handle, finish, final=True)
                run_ended(handle, end, written)
                return end
            finally:
                self._release(handle)

    async def abegin_run(self, spec: RunSpec) -> RunHandle:
        """``begin_run`` off the event loop."""
        return await self._offload(self.begin_run, spec)

    async def aend_run(self, handle: RunHandle, error: BaseException | None = None) -> RunEnd | None:
        """``end_run`` off the event loop."""
        return await self._offload(self.end_run, handle, error)

    def _outcome(self, handle: RunHandle, error: BaseException | None) -> RunEnd:
        if error is not None and handle.store_error is not None and (
                error is handle.store_error or isinstance(error, DRIVER_ERRORS)):
            # accord's database failed under the run, not the run's work: what was saved
            # stands and the thread stays running, for a retry (or the stuck-thread chore)
            return RunEnd(ThreadStatus.RUNNING)
        if error is not None and not isinstance(error, STOPPED):
            return RunEnd(ThreadStatus.FAILED, error=cause_of(error))
        if handle.failure is not None and error is None:
            return RunEnd(ThreadStatus.FAILED, error=handle.failure.cause)
        if handle.interrupts:
            payloads = interrupt_payloads(handle.interrupts)
            return RunEnd(ThreadStatus.INTERRUPTED, pending=payloads[0]["value"])
        if handle.head is None:  # nothing ran (a thread with nothing left to do)
            previous = handle.previous
            if previous is not None and previous.status is ThreadStatus.INTERRUPTED:
                return RunEnd(ThreadStatus.INTERRUPTED, pending=previous.pending)
            return RunEnd(ThreadStatus.DONE)
        return RunEnd(ThreadStatus.DONE if handle.final else ThreadStatus.RUNNING)

    @staticmethod
    def _failed_node(handle: RunHandle) -> str | None:
        if handle.failure is not None:
            return handle.failure.node
        for op in handle.pending:
            if isinstance(op, PendingWrites) and any(ch == ERROR for ch, _ in op.writes):
                return op.task_path.rsplit(",", 1)[-1].strip() or None
        return None

    def _flush(self, handle: RunHandle, extra: Callable[[Any, datetime], None] | None = None,
               *, final: bool = False) -> None:
        """Write everything the run held back, plus ``extra``, in one transaction."""
        ops = handle.take()
        if not ops and extra is None:
            return
        puts = [op for op in ops if isinstance(op, PendingPut)]
        events = self._new_events(handle, puts)
        parents = {put.checkpoint["id"]: (put.config.get("configurable") or {}).get("checkpoint_id")
                   for put in puts}
        now = self.clock()

        def body(cur: Any) -> None:
            # every write a run makes is fenced: a run that lost its thread writes nothing
            if not self.dialect.fence(cur, handle.thread_id, handle.epoch,
                                      puts[-1].checkpoint["id"] if puts else None,
                                      bool(puts), now):
                handle.fenced = True
                raise WriterFenced(handle.thread_id, handle.epoch)
            for op in ops:
                if isinstance(op, PendingResult):
                    self.dialect.record_result(cur, handle.thread_id, op.key, op.tool, op.text,
                                               now)
                else:
                    self._store(cur, op)
            self.dialect.insert_events(cur, handle.thread_id, events)
            self.dialect.insert_outbox(cur, step_events(handle, handle.thread_id, events))
            for checkpoint_id, event in events:  # a step's dead letters commit with the step
                if event.get("kind") == AuditKind.DEAD_LETTERED and isinstance(
                        event.get("letter"), dict):
                    insert_letter(self.dialect, cur, {
                        "reason": LetterReason.EXHAUSTED, **event["letter"],
                        "thread_id": handle.thread_id, "node": event.get("node"),
                        "agent": event.get("agent"), "task_id": event.get("task_id"),
                        "checkpoint_id": parents.get(checkpoint_id) or checkpoint_id}, now)
            if extra is not None:
                extra(cur, now)

        started = time.perf_counter()
        try:
            if final:
                self._final_transaction(handle, body)
            else:
                self._transaction(handle, body)
        except BaseException as exc:
            if not handle.fenced:
                handle.pending[:0] = ops  # nothing was written: a later flush may try again
            if isinstance(exc, DRIVER_ERRORS) and not final:
                handle.store_error = exc
            raise
        events_committed(handle, events, time.perf_counter() - started, self.dialect.name)
        if puts:
            handle.input_saved = True
        handle.recorded_events.update(event["id"] for _, event in events)

    @staticmethod
    def _new_events(handle: RunHandle, puts: Sequence[PendingPut]) -> list[tuple[str, dict]]:
        """Audit events that first appear in these checkpoints, with the checkpoint's id."""
        seen = set(handle.recorded_events)
        out: list[tuple[str, dict]] = []
        for put in puts:
            if AUDIT_CHANNEL not in put.new_versions:
                continue
            for event in put.checkpoint["channel_values"].get(AUDIT_CHANNEL) or ():
                event_id = event.get("id") if isinstance(event, dict) else None
                if event_id and event_id not in seen:
                    seen.add(event_id)
                    out.append((put.checkpoint["id"], event))
        return out

    @staticmethod
    def _live(handle: RunHandle) -> None:
        if handle.fenced or handle.ended:
            raise WriterFenced(handle.thread_id, handle.epoch)

    # the LangGraph saver interface --------------------------------------------------------
    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        handle = run_of(config)
        if handle is None:
            return super().put(config, checkpoint, metadata, new_versions)  # type: ignore[misc]
        with handle.lock:
            self._live(handle)
            if handle.on_put(PendingPut(config, checkpoint, dict(metadata), dict(new_versions))):
                self._flush(handle)
        configurable = config["configurable"]
        return {"configurable": {"thread_id": configurable["thread_id"],
                                 "checkpoint_ns": configurable.get("checkpoint_ns", ""),
                                 "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: Any, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        handle = run_of(config)
        if handle is None:
            return super().put_writes(config, writes, task_id, task_path)  # type: ignore[misc]
        with handle.lock:
            self._live(handle)
            if handle.on_writes(PendingWrites(config, list(writes), task_id, task_path)):
                self._flush(handle)
        return None

    def get_tuple(self, config: Any) -> Any:
        handle = run_of(config)
        if handle is not None:
            with handle.lock:
                if handle.pending:
                    self._flush(handle)
                if not handle.has_checkpoints and not handle.head and not (
                    config["configurable"].get("checkpoint_id")
                ):
                    return None  # a thread with no checkpoint yet: no query needed
        try:
            if handle is not None and handle.spec.delta_channels:
                return self._read_together(lambda: self._with_history(handle, config))
            return super().get_tuple(config)  # type: ignore[misc]
        except DRIVER_ERRORS as exc:
            if handle is not None:
                handle.store_error = exc
            raise
        except AccordError:
            raise
        except Exception as exc:  # noqa: BLE001 - a stored value that cannot be read back
            configurable = config.get("configurable") or {}
            thread_id = str(configurable.get("thread_id"))
            if handle is not None and handle.spec.kind is RunKind.REPLAY and not (
                configurable.get("checkpoint_id")
            ):
                # a replay from an intact checkpoint asks only which checkpoint is the latest
                return _latest_stand_in(config, self.checkpoint_ids(thread_id))
            latest = None if configurable.get("checkpoint_id") else next(
                iter(self.checkpoint_ids(thread_id)), (None,))[0]
            raise CorruptCheckpoint(thread_id, configurable.get("checkpoint_id") or latest,
                                    cause_of(exc)) from exc

    def _with_history(self, handle: RunHandle, config: Any) -> Any:
        """The checkpoint and its delta channels' history, read at once (one round of reads)."""
        found = super().get_tuple(config)  # type: ignore[misc]
        if found is not None:
            history = super().get_delta_channel_history(  # type: ignore[misc]
                config=found.config, channels=list(handle.spec.delta_channels))
            handle.delta_cache[found.config["configurable"]["checkpoint_id"]] = history
        return found

    def get_delta_channel_history(self, *, config: Any, channels: Sequence[str]) -> Any:
        handle = run_of(config)
        cached = None
        if handle is not None:
            cached = handle.delta_cache.get(config["configurable"].get("checkpoint_id"))
        if cached is not None and set(channels) <= set(cached):
            return {channel: cached[channel] for channel in channels}
        return super().get_delta_channel_history(config=config, channels=channels)  # type: ignore[misc]

    async def aget_tuple(self, config: Any) -> Any:
        handle = run_of(config)
        if (handle is not None and not handle.has_checkpoints and not handle.head
                and not handle.pending and not config["configurable"].get("checkpoint_id")):
            return None  # a thread with no checkpoint yet: no query, no thread hop
        return await self._offload(self.get_tuple, config)

    def list(self, config: Any, *, filter: Any = None, before: Any = None,
             limit: int | None = None) -> Iterator[Any]:
        """The thread's checkpoints; one that cannot be read back is :class:`CorruptCheckpoint`
        (typed, with its thread), as it is for ``get_tuple``."""
        try:
            items = list(super().list(config, filter=filter, before=before, limit=limit))  # type: ignore[misc]
        except (*DRIVER_ERRORS, AccordError):
            raise
        except Exception as exc:  # noqa: BLE001 - a stored value that cannot be read back
            thread_id = str(((config or {}).get("configurable") or {}).get("thread_id"))
            raise CorruptCheckpoint(thread_id, None, cause_of(exc), in_history=True) from exc
        yield from items

    async def alist(self, config: Any, *, filter: Any = None, before: Any = None,
                    limit: int | None = None) -> AsyncIterator[Any]:
        items = await self._offload(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        handle = run_of(config)
        if handle is None or not handle.lock.acquire(blocking=False):
            return await self._offload(self.put, config, checkpoint, metadata, new_versions)
        try:  # held back (the usual case) without leaving the event loop
            self._live(handle)
            due = handle.on_put(PendingPut(config, checkpoint, dict(metadata), dict(new_versions)))
        finally:
            handle.lock.release()
        if due:
            await self._offload(self._flush_locked, handle)
        configurable = config["configurable"]
        return {"configurable": {"thread_id": configurable["thread_id"],
                                 "checkpoint_ns": configurable.get("checkpoint_ns", ""),
                                 "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(self, config: Any, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        handle = run_of(config)
        if handle is None or not handle.lock.acquire(blocking=False):
            await self._offload(self.put_writes, config, writes, task_id, task_path)
            return
        try:
            self._live(handle)
            due = handle.on_writes(PendingWrites(config, list(writes), task_id, task_path))
        finally:
            handle.lock.release()
        if due:
            await self._offload(self._flush_locked, handle)

    def _flush_locked(self, handle: RunHandle) -> None:
        with handle.lock:
            self._flush(handle)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._offload(self.delete_thread, thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._offload(self.prune, thread_ids, strategy=strategy)  # type: ignore[attr-defined]

    async def aget_delta_channel_history(self, *, config: Any, channels: Sequence[str]) -> Any:
        return await self._offload(self.get_delta_channel_history, config=config,
                                   channels=channels)

    # retention ----------------------------------------------------------------------------
    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the threads (``BaseCheckpointSaver.prune``).

        ``keep_latest`` keeps each thread's latest checkpoint; a thread whose conversation is a
        ``DeltaChannel`` is compacted (``accord.checkpoints.compact``) instead of refused.
        ``delete`` also forgets the threads' index rows, audit events and tool results.
        """
        ids = check_strategy(thread_ids, strategy)
        if strategy == "keep_latest":
            ids = [t for t in ids if not compact(self, t)]
        if ids:
            self._prune_stored(ids, strategy)
        if strategy == "delete":
            self.forget(ids)

    # reads --------------------------------------------------------------------------------
    @property
    def threads(self) -> SaverThreads:
        """The thread index."""
        return SaverThreads(self)

    def checkpoint_ids(self, thread_id: str) -> list[tuple[str, str | None]]:
        """A thread's root checkpoints as (id, parent id), newest first, without reading them
        (history still lists a checkpoint that cannot be read)."""
        return self._read(lambda cur: self.dialect.checkpoint_ids(cur, thread_id))

    def forget(self, thread_ids: Sequence[str]) -> int:
        """Delete the threads' index rows, audit events and tool results."""
        ids = [str(t) for t in thread_ids]
        if not ids:
            return 0
        return self._transaction(None, lambda cur: self.dialect.delete_threads(cur, ids))


__all__ = ["AccordSaver", "ClaimRefused", "RunEnd", "cause_of", "run_of"]
