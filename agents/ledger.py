"""The tool ledger: results of a step's tool calls, recorded durably as they happen.

LangGraph re-runs a whole node after a crash or a resume. Side-effecting tools take an
idempotency key, so they do not act twice; the ledger also makes the re-run *see* what the first
run saw: every tool result of a task is recorded under its call's key (in accord's saver, the
same database as the checkpoints, together with whatever the run had not written yet) before
the step goes on, and a re-run gets the recorded result back instead of calling the tool again.
That holds for a user's tool with no idempotency of its own too. Outside a run on accord's
saver, tools simply run.

An agent's ledger is scoped to its node and its visit of the task (``current_ledger(task,
scope=...)``, the visit counted from the transitions into the node that the state holds): a
re-run of a visit, after a crash, a resume or a replay, replays what that visit saw, while
another agent, or a later visit of the same agent (a loop such as drafter -> fact-checker ->
drafter), calls its tools afresh and sees what changed since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.config import get_config

from accord.checkpoints.runs import RUN_KEY, RunHandle


@dataclass(frozen=True)
class Ledger:
    """Recorded tool results of one task of one run."""

    handle: RunHandle
    """The run (its saver keeps the ledger)."""
    task_id: str
    """The task whose calls these are."""
    scope: str = ""
    """Appended to every key: the agent node and visit the calls belong to (empty: the task)."""

    def _key(self, key: str) -> str:
        return f"{key}@{self.scope}" if self.scope else key

    @property
    def thread_id(self) -> str:
        return self.handle.thread_id

    def recall(self, key: str) -> tuple[bool, Any]:
        """``(True, result)`` when the call was recorded, else ``(False, None)``."""
        return self.handle.saver.ledger_recall(self.handle, self.task_id, self._key(key))

    def record(self, key: str, tool: str, result: Any, *, repeatable: bool = False) -> Any:
        """Record a result; return it in the form a re-run will see (a JSON round trip, kept
        as text so PostgreSQL's ``jsonb`` cannot reorder it).

        A tool with no idempotency of its own is recorded durably before the step goes on; a
        ``repeatable`` one (it takes an idempotency key, or only reads) with the run's next
        write.
        """
        return self.handle.saver.ledger_record(self.handle, self._key(key), tool, result,
                                               not repeatable)

    def settle(self) -> None:
        """Before a tool with side effects runs: write the results the run still holds (a
        re-run after a crash then sees what this run read before it acted)."""
        self.handle.saver.ledger_settle(self.handle)

    async def asettle(self) -> None:
        await self.handle.saver.aledger_settle(self.handle)

    async def arecall(self, key: str) -> tuple[bool, Any]:
        return await self.handle.saver.aledger_recall(self.handle, self.task_id, self._key(key))

    async def arecord(self, key: str, tool: str, result: Any, *, repeatable: bool = False) -> Any:
        return await self.handle.saver.aledger_record(self.handle, self._key(key), tool, result,
                                                      not repeatable)


def current_ledger(task_id: str, *, scope: str = "") -> Ledger | None:
    """The ledger of the running node's run, when it runs on accord's saver; ``scope`` (an
    agent node and its visit of the task) keeps its calls apart from other visits'."""
    try:
        configurable = get_config().get("configurable", {})
    except RuntimeError:  # not inside a graph run
        return None
    handle = configurable.get(RUN_KEY)
    if not isinstance(handle, RunHandle) or handle.saver is None:
        return None
    return Ledger(handle, task_id, scope)
