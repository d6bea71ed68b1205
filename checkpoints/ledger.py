"""The tool ledger in accord's saver (``accord_ledger``): each tool result of a run, recorded
when it exists, so a step re-run after a crash sees what its first run saw, and a tool with no
idempotency of its own is not called again. Nodes reach it through
``accord.agents.ledger.Ledger``."""

from __future__ import annotations

import json
from typing import Any

from accord.checkpoints.journal import dumps
from accord.checkpoints.runs import PendingResult, RunHandle


class LedgerAccess:
    """The ledger's part of accord's saver."""

    def ledger_recall(self, handle: RunHandle, task_id: str, key: str) -> tuple[bool, Any]:
        """``(True, result)`` when a tool call with this key was recorded, else ``(False, None)``."""
        if key in handle.results:
            return True, json.loads(handle.results[key])
        if not handle.has_ledger or (task_id and task_id == handle.spec.task_id):
            return False, None  # nothing can be recorded for this thread or this new task yet
        text = self._read(lambda cur: self.dialect.recall_result(cur, handle.thread_id, key))
        return (True, json.loads(text)) if text is not None else (False, None)

    def ledger_record(self, handle: RunHandle, key: str, tool: str, result: Any,
                      durable: bool = True) -> Any:
        """Record a tool result; return it as a re-run will see it (a JSON round trip).

        ``durable``: written now, with everything the run held back (a tool with no
        idempotency of its own must not run again after a crash). A tool idempotent by key, or
        one that only reads, passes False: its result travels with the run's next write, and a
        re-run that misses it calls the tool again (under the same key), which is harmless.
        """
        text = dumps(result)
        with handle.lock:
            if durable:
                self._live(handle)
                self._flush(handle, lambda cur, now: self.dialect.record_result(
                    cur, handle.thread_id, key, tool, text, now))
                handle.results[key] = text
            else:
                self._hold_result(handle, key, tool, text)
        return json.loads(text)

    def _hold_result(self, handle: RunHandle, key: str, tool: str, text: str) -> None:
        """Keep a result for the run's next write (``handle.lock`` held)."""
        self._live(handle)
        handle.pending.append(PendingResult(key, tool, text))
        handle.results[key] = text

    def ledger_settle(self, handle: RunHandle) -> None:
        """Write the tool results the run holds (with everything else it holds), if any."""
        with handle.lock:
            if any(isinstance(op, PendingResult) for op in handle.pending):
                self._live(handle)
                self._flush(handle)

    async def aledger_settle(self, handle: RunHandle) -> None:
        """``ledger_settle`` off the event loop (no thread hop when nothing is held)."""
        if any(isinstance(op, PendingResult) for op in handle.pending):
            await self._offload(self.ledger_settle, handle)

    async def aledger_recall(self, handle: RunHandle, task_id: str, key: str) -> tuple[bool, Any]:
        """``ledger_recall`` off the event loop (no thread hop when nothing can be recorded)."""
        if key not in handle.results and (
            not handle.has_ledger or (task_id and task_id == handle.spec.task_id)
        ):
            return False, None
        return await self._offload(self.ledger_recall, handle, task_id, key)

    async def aledger_record(self, handle: RunHandle, key: str, tool: str, result: Any,
                             durable: bool = True) -> Any:
        """``ledger_record`` off the event loop; a result that waits for the run's next write
        is held on the loop (no thread hop) unless a write is in progress."""
        if durable or not handle.lock.acquire(blocking=False):
            return await self._offload(self.ledger_record, handle, key, tool, result, durable)
        try:
            text = dumps(result)
            self._hold_result(handle, key, tool, text)
        finally:
            handle.lock.release()
        return json.loads(text)

    # reads --------------------------------------------------------------------------------
    def recorded(self, thread_id: str, key: str) -> tuple[bool, Any]:
        """``(True, result)`` when the thread's ledger holds ``key`` (outside any run)."""
        text = self._read(lambda cur: self.dialect.recall_result(cur, thread_id, key))
        return (True, json.loads(text)) if text is not None else (False, None)

__all__ = ["LedgerAccess"]
