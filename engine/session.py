"""One client of the engine against one database: what the CLI, the server and the workers share.

A session opens accord's saver once (one pool for PostgreSQL, one connection for SQLite) and
builds each graph it needs once. Locks, the thread index, input checks, the audit log and
fencing are the engine's (``accord.engine.AccordGraph``); the session only reads what a
client shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.types import Command

from accord.checkpoints import AccordSaver, ThreadNotFound, ThreadRecord, open_async_saver
from accord.engine.graph import AccordGraph
from accord.graphs.builder import Workflow
from accord.graphs.catalog import load_workflow, loadable
from accord.records import AuditEvent, AuditKind, ThreadStatus

OnUpdate = Callable[[str, Any], None]


@dataclass
class RunOutcome:
    """Where a thread stands after a command."""

    thread_id: str
    """The thread."""
    graph: str
    """The graph that runs it."""
    status: str
    """``running``, ``interrupted``, ``done`` or ``failed``."""
    reply: str | None = None
    """The last message of the assistant."""
    interrupt: dict[str, Any] | None = None
    """The pending approval payload, for an interrupted thread."""
    error: str | None = None
    """Why the run failed."""
    resume_hint: str | None = None
    """How to continue, for an interrupted or failed thread."""
    next: list[str] = field(default_factory=list)
    """Nodes that would run next."""
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    """Agents that failed during the command and were replaced by their fallback, with why."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reply(values: dict[str, Any]) -> str | None:
    for message in reversed(values.get("messages") or []):
        if isinstance(message, AIMessage) and message.text:
            return message.text
    return None


def describe(thread_id: str, graph_name: str, snapshot: Any,
             record: ThreadRecord | None) -> RunOutcome:
    """A thread's outcome from its index record (status, approval, cause) and latest state."""
    status = record.status if record is not None else (
        ThreadStatus.INTERRUPTED if snapshot.interrupts
        else ThreadStatus.RUNNING if snapshot.next else ThreadStatus.DONE)
    pending = record.pending if record is not None else (
        snapshot.interrupts[0].value if snapshot.interrupts else None)
    hint = None
    if status is ThreadStatus.INTERRUPTED and (pending or {}).get("type") == "escalation":
        hint = f"accord resume {thread_id} --respond TEXT | --reject REASON"
    elif status is ThreadStatus.INTERRUPTED:
        hint = (f"accord resume {thread_id} --approve | --reject REASON | --edit JSON | "
                "--respond MESSAGE")
    elif status in (ThreadStatus.FAILED, ThreadStatus.RUNNING):
        hint = f"accord resume {thread_id}"
    return RunOutcome(
        thread_id=thread_id,
        graph=graph_name,
        status=status.value,
        reply=_reply(snapshot.values or {}),
        interrupt=pending if status is ThreadStatus.INTERRUPTED else None,
        error=record.error if record is not None and status is ThreadStatus.FAILED else None,
        resume_hint=hint,
        next=list(snapshot.next or ()),
    )


def config_for(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


class Session:
    """One saver, the graphs built on it, and what the CLI reads through them."""

    def __init__(self, saver: AccordSaver, *, graph_ref: str | None = None) -> None:
        self.saver = saver
        self.graph_ref = graph_ref
        """A graph reference for threads that record none accord can load."""
        self._workflows: dict[str, Workflow] = {}
        self._graphs: dict[str, AccordGraph] = {}
        self._running: dict[str, asyncio.Task[Any]] = {}
        """The task driving each thread this session runs now."""

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str | None, *, graph_ref: str | None = None) -> AsyncIterator[Session]:
        async with AsyncExitStack() as stack:
            saver = await stack.enter_async_context(open_async_saver(url))
            yield cls(saver, graph_ref=graph_ref)

    def workflow(self, name: str) -> Workflow:
        if name not in self._workflows:
            self._workflows[name] = load_workflow(name)
        return self._workflows[name]

    def graph(self, name: str) -> AccordGraph:
        """The named graph on this session's saver, built once."""
        if name not in self._graphs:
            self._graphs[name] = self.workflow(name).compile(checkpointer=self.saver)
        return self._graphs[name]

    async def record(self, thread_id: str) -> ThreadRecord | None:
        return await self.saver._offload(self.saver.threads.get, thread_id)

    async def graph_of(self, thread_id: str, record: ThreadRecord | None = None) -> str:
        """The graph a thread runs on: the thread index's, else its checkpoints' ``graph_id``."""
        record = record or await self.record(thread_id)
        name = record.graph if record is not None else None
        if name is None:
            found = await self.saver.aget_tuple(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
            if found is None:
                raise ThreadNotFound(f"unknown thread {thread_id!r}")
            name = (found.metadata or {}).get("graph_id")
        if self.graph_ref:
            self._workflows.setdefault(name or self.graph_ref, load_workflow(self.graph_ref))
            return name or self.graph_ref
        if name in self._workflows or loadable(name):
            return name
        raise ThreadNotFound(
            f"thread {thread_id!r} runs graph {name!r}, which is neither in accord's catalog "
            "nor a graph id of ./langgraph.json; pass --graph file.py:attr or module:attr"
        )

    async def drive(self, name: str, thread_id: str, payload: Any, on_update: OnUpdate,
                    configurable: dict[str, Any] | None = None,
                    user: str | None = None) -> RunOutcome:
        """Run the graph on the thread, showing each step; the outcome as the index records it.

        An error the engine raises before the run claims the thread (bad input, a busy thread,
        a thread in the wrong state) propagates; a run that fails is an outcome (``failed``).
        """
        graph = self.graph(name)
        config = config_for(thread_id)
        config["configurable"].update(configurable or {})
        if user:
            config["configurable"]["user_id"] = user  # the end user: permissions, limits
        before = await self.record(thread_id)
        fallbacks: list[dict[str, Any]] = []
        task = asyncio.current_task()
        if task is not None:
            self._running[thread_id] = task
        try:
            async for chunk in graph.astream(payload, config, stream_mode="updates"):
                for node, update in chunk.items():
                    on_update(node, update)
                    fallbacks.extend(_fallbacks(update))
        except Exception as exc:
            try:
                after = await self.record(thread_id)
            except Exception:  # noqa: BLE001 - the run's own error is the one to report
                raise exc from None
            claimed = after is not None and (before is None or after.epoch > before.epoch)
            if not claimed or after.status is not ThreadStatus.FAILED:
                raise
        finally:
            if task is not None and self._running.get(thread_id) is task:
                del self._running[thread_id]
        outcome = await self.outcome(name, thread_id)
        outcome.fallbacks = fallbacks
        return outcome

    async def outcome(self, name: str, thread_id: str) -> RunOutcome:
        snapshot = await self.graph(name).aget_state(config_for(thread_id))
        return describe(thread_id, name, snapshot, await self.record(thread_id))

    async def run(self, name: str, message: str, thread_id: str, on_update: OnUpdate,
                  user: str | None = None) -> RunOutcome:
        payload = {"messages": [{"role": "user", "content": message}]}
        return await self.drive(name, thread_id, payload, on_update, user=user)

    async def resume(self, thread_id: str, decision: dict[str, Any] | None,
                     on_update: OnUpdate, user: str | None = None,
                     configurable: dict[str, Any] | None = None) -> RunOutcome:
        record = await self.record(thread_id)
        name = await self.graph_of(thread_id, record)
        if record is not None and decision is None:
            if record.status is ThreadStatus.INTERRUPTED:
                from accord.engine.errors import NotWaiting

                raise NotWaiting(f"thread {thread_id!r} is waiting for a decision: pass "
                                 "--approve, --reject or --edit")
            if record.status is ThreadStatus.DONE:
                from accord.engine.errors import NotWaiting

                raise NotWaiting(f"thread {thread_id!r} is finished; nothing to resume")
        payload = Command(resume=decision) if decision is not None else None
        return await self.drive(name, thread_id, payload, on_update, configurable, user=user)

    async def replay(self, thread_id: str, checkpoint_id: str, on_update: OnUpdate) -> RunOutcome:
        """Run the thread on from one of its checkpoints (a new branch of the same thread);
        side effects already done are not repeated (their idempotency keys). Raises
        :class:`~accord.checkpoints.CheckpointNotFound` for a checkpoint the thread lacks."""
        from accord.checkpoints.timetravel import checkpoint_config

        name = await self.graph_of(thread_id)
        await checkpoint_config(self.graph(name), thread_id, checkpoint_id)
        return await self.drive(name, thread_id, None, on_update, {"checkpoint_id": checkpoint_id})

    async def newest_intact(self, thread_id: str) -> str:
        """The thread's newest checkpoint that reads back (where a replay recovers a thread
        whose latest checkpoint is damaged); raises ``CheckpointError`` when none does."""
        from accord.checkpoints import CheckpointError

        graph = self.graph(await self.graph_of(thread_id))
        rows = await self.saver._offload(self.saver.checkpoint_ids, thread_id)
        if not rows:
            raise ThreadNotFound(f"unknown thread {thread_id!r}")
        for checkpoint_id, _ in rows:  # newest first; stops at the first that reads
            if await self._readable(graph, thread_id, checkpoint_id):
                return checkpoint_id
        raise CheckpointError(f"thread {thread_id!r}: none of its checkpoints can be read")

    async def _readable(self, graph: AccordGraph, thread_id: str, checkpoint_id: str) -> bool:
        """Whether the checkpoint's state reads back (its own values and its history)."""
        from accord.checkpoints import CorruptCheckpoint

        config = config_for(thread_id)
        config["configurable"]["checkpoint_id"] = checkpoint_id
        try:
            await graph.aget_state(config)
        except CorruptCheckpoint:
            return False
        return True

    async def retry_letter(self, letter_id: str, on_update: OnUpdate) -> RunOutcome:
        """Re-enter a dead letter's thread from its checkpoint (the newest intact one when that
        checkpoint cannot be read) and run it on; the letter is marked ``retried`` once the
        retry claimed the thread (``accord.resilience.deadletters``). Raises
        ``DeadLetterNotFound`` or ``LetterNotDead``."""
        from accord.resilience import deadletters

        saver = self.saver
        plan = await saver._offload(deadletters.plan_retry, saver, letter_id)
        thread = plan.letter.thread_id
        name = await self.graph_of(thread)
        before = await saver._offload(deadletters.thread_epoch, saver, thread)
        configurable = {k: v for k, v in plan.configurable.items() if k != "thread_id"}
        entry = configurable.get("checkpoint_id") or plan.letter.checkpoint_id
        if entry and not await self._readable(self.graph(name), thread, entry):
            # the letter's checkpoint is damaged: re-enter from the newest one that reads
            configurable["checkpoint_id"] = await self.newest_intact(thread)
        try:
            return await self.drive(name, thread, None, on_update, configurable)
        finally:
            await saver._offload(deadletters.finish_retry, saver, plan.letter, before)

    async def cancel(self, thread_id: str, *, by: str | None, reason: str,
                     graph: str | None = None) -> ThreadRecord:
        """Stop the thread: a run of this session in flight is cancelled (its task), then the
        thread is recorded ``failed`` with who cancelled it and why (``engine/cancel.py``).

        ``graph`` names the graph of a thread the index does not know yet (queued work).
        Raises :class:`~accord.engine.cancel.NotCancellable` for a finished thread.
        """
        from accord.engine.cancel import record_cancel

        task = self._running.get(thread_id)
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait({task})
        record = await self.record(thread_id)
        graph = record.graph if record is not None and record.graph else graph
        return await self.saver._offload(record_cancel, self.saver, thread_id, graph=graph,
                                         by=by, reason=reason, expected=record)

    async def reassign(self, thread_id: str, target: str, *, by: str | None, reason: str,
                       on_update: OnUpdate) -> RunOutcome:
        """Move the thread's active task to ``target`` (``engine/reassign.py``) and continue
        the thread there."""
        from accord.engine.reassign import reassign

        configurable = await reassign(self, thread_id, target, by=by, reason=reason)
        name = await self.graph_of(thread_id)
        return await self.drive(name, thread_id, None, on_update, configurable)

    async def show(self, thread_id: str) -> tuple[RunOutcome, Any, list[Any], list[AuditEvent]]:
        """A thread's outcome, latest state, checkpoint history and audit log."""
        name = await self.graph_of(thread_id)
        graph = self.graph(name)
        config = config_for(thread_id)
        snapshot = await graph.aget_state(config)
        if not snapshot.values:
            raise ThreadNotFound(f"unknown thread {thread_id!r}")
        history = [h async for h in graph.aget_state_history(config)]
        audit = await self.saver._offload(self.saver.audit_log, thread_id)
        return describe(thread_id, name, snapshot, await self.record(thread_id)), snapshot, history, audit


def _fallbacks(update: Any) -> list[dict[str, Any]]:
    events = update.get("audit") if isinstance(update, dict) else None
    events = getattr(events, "value", events) or []
    return [e for e in events if isinstance(e, dict) and e.get("kind") == AuditKind.FALLBACK]


def tasks_of(values: dict[str, Any], audit: list[AuditEvent]) -> list[dict[str, Any]]:
    """Every task of a thread: finished ones from the audit log, open ones from the state."""
    tasks: dict[str, dict[str, Any]] = {}
    for event in audit:
        if event.kind is AuditKind.TASK_FINISHED and event.task_id:
            tasks[event.task_id] = dict(event.details().get("task") or {})
    for task_id, task in (values.get("tasks") or {}).items():
        tasks[task_id] = {**tasks.get(task_id, {}), **task}
    return list(tasks.values())
