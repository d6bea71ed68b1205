"""Runs and resumes threads against a database: one writer per thread, indexed status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.types import Command

from accord.checkpoints import (
    ThreadIndex,
    athread_lock,
    open_async_saver,
    open_store,
    open_thread_index,
)
from accord.graphs.builder import Workflow
from accord.graphs.catalog import CATALOG, load_workflow
from accord.graphs.errors import AccordError
from accord.guardrails import GuardrailTripwireTriggered, run_input_guardrails

OnUpdate = Callable[[str, Any], None]


class ThreadNotFound(AccordError):
    """No thread with that id in the database."""


class NotWaiting(AccordError):
    """A decision was sent to a thread that is not waiting for one (or the reverse)."""


@dataclass
class RunOutcome:
    """Where a thread stands after a run or resume."""

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reply(values: dict[str, Any]) -> str | None:
    for message in reversed(values.get("messages") or []):
        if isinstance(message, AIMessage) and message.text:
            return message.text
    return None


def finished(snapshot: Any) -> bool:
    """No step left to run. A step whose writes were saved but whose checkpoint was not (a crash
    in between) has no ``next`` node, yet its task is still listed: the thread is not done."""
    return not snapshot.next and not getattr(snapshot, "tasks", ())


def describe(thread_id: str, graph_name: str, snapshot: Any, error: str | None = None) -> RunOutcome:
    """Status of a thread from its latest checkpoint."""
    interrupts = [i.value for i in getattr(snapshot, "interrupts", ()) or ()]
    if error is not None:
        status = "failed"
    elif interrupts:
        status = "interrupted"
    elif not finished(snapshot):
        status = "running"
    else:
        status = "done"
    hint = None
    if status == "interrupted":
        hint = (f"accord resume {thread_id} --approve | --reject REASON | --edit JSON")
    elif status in ("failed", "running"):
        hint = f"accord resume {thread_id}"
    return RunOutcome(
        thread_id=thread_id,
        graph=graph_name,
        status=status,
        reply=_reply(snapshot.values or {}),
        interrupt=interrupts[0] if interrupts else None,
        error=error,
        resume_hint=hint,
        next=list(snapshot.next or ()),
    )


class Session:
    """A graph bound to a database for the CLI (or any script)."""

    def __init__(self, url: str | None, *, lock_wait: float = 0.0) -> None:
        self.url = url
        self.lock_wait = lock_wait
        self._workflows: dict[str, Workflow] = {}

    def workflow(self, name: str) -> Workflow:
        """The named workflow, built once per session."""
        if name not in self._workflows:
            self._workflows[name] = load_workflow(name)
        return self._workflows[name]

    @asynccontextmanager
    async def graph(self, name: str) -> AsyncIterator[Any]:
        """The graph with accord's saver and store (the store holds the tool ledger)."""
        async with open_async_saver(self.url) as saver:
            with open_store(self.url) as store:
                yield self.workflow(name).compile(checkpointer=saver, store=store)

    async def graph_of(self, thread_id: str) -> str:
        """The graph a thread runs on: from the thread index, else from its checkpoints
        (threads started through the dev server or Studio carry ``graph_id`` there)."""
        with open_thread_index(self.url) as index:
            record = index.get(thread_id)
        if record is not None and record.graph:
            return record.graph
        async with open_async_saver(self.url) as saver:
            found = await saver.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        graph_id = (found.metadata or {}).get("graph_id") if found is not None else None
        if graph_id in CATALOG:
            return graph_id
        raise ThreadNotFound(f"unknown thread {thread_id!r}")

    @staticmethod
    def _record(index: ThreadIndex, outcome: RunOutcome) -> None:
        index.upsert(outcome.thread_id, graph=outcome.graph, status=outcome.status,
                     pending=outcome.interrupt)

    async def _drive(self, name: str, thread_id: str, payload: Any, on_update: OnUpdate,
                     check: Callable[[Any, ThreadIndex], None]) -> RunOutcome:
        config = {"configurable": {"thread_id": thread_id}}
        async with athread_lock(self.url, thread_id, wait=self.lock_wait), self.graph(name) as graph:
            with open_thread_index(self.url) as index:
                return await self._stream(graph, index, name, thread_id, config, payload, on_update, check)

    async def _stream(self, graph: Any, index: ThreadIndex, name: str, thread_id: str,
                      config: dict[str, Any], payload: Any, on_update: OnUpdate,
                      check: Callable[[Any, ThreadIndex], None]) -> RunOutcome:
        check(await graph.aget_state(config), index)
        index.upsert(thread_id, graph=name, status="running")
        error = None
        try:
            # "sync": each step's checkpoint is on disk before the next step starts, so a
            # crash never loses a step whose side effects already happened (crash recovery).
            async for chunk in graph.astream(payload, config, stream_mode="updates",
                                             durability="sync"):
                for node, update in chunk.items():
                    on_update(node, update)
        except AccordError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded, not lost
            error = f"{type(exc).__name__}: {exc}"
        outcome = describe(thread_id, name, await graph.aget_state(config), error)
        self._record(index, outcome)
        return outcome

    async def run(self, name: str, message: str, thread_id: str, on_update: OnUpdate) -> RunOutcome:
        tripped = run_input_guardrails(self.workflow(name).input_guardrails, message)
        if tripped is not None:  # refused before anything is saved
            raise GuardrailTripwireTriggered(tripped)
        payload = {"messages": [{"role": "user", "content": message}]}

        def check(snapshot: Any, index: ThreadIndex) -> None:
            if snapshot.interrupts:
                raise NotWaiting(
                    f"thread {thread_id!r} is waiting for an approval; answer it with accord resume"
                )
            if not finished(snapshot):
                raise NotWaiting(
                    f"thread {thread_id!r} stopped mid-run; continue it with accord resume {thread_id}"
                )

        return await self._drive(name, thread_id, payload, on_update, check)

    async def resume(self, thread_id: str, decision: dict[str, Any] | None, on_update: OnUpdate) -> RunOutcome:
        name = await self.graph_of(thread_id)

        def check(snapshot: Any, index: ThreadIndex) -> None:
            if not snapshot.values:
                raise ThreadNotFound(
                    f"thread {thread_id!r} has no saved checkpoint (it stopped before its first "
                    f"step was saved); start it again with accord run {name} MESSAGE --thread {thread_id}"
                )
            if decision is None and (snapshot.interrupts or finished(snapshot)):
                # A crash after the last checkpoint but before the index was updated leaves the
                # index saying "running": set it right, so `accord threads` lists the approval.
                self._record(index, describe(thread_id, name, snapshot))
            if decision is not None and not snapshot.interrupts:
                state = "finished" if finished(snapshot) else "not waiting for a decision"
                raise NotWaiting(f"thread {thread_id!r} is {state}; there is nothing to approve")
            if decision is None and snapshot.interrupts:
                raise NotWaiting(
                    f"thread {thread_id!r} is waiting for a decision: pass --approve, --reject or --edit"
                )
            if decision is None and finished(snapshot):
                raise NotWaiting(f"thread {thread_id!r} is finished; nothing to resume")

        payload = Command(resume=decision) if decision is not None else None
        return await self._drive(name, thread_id, payload, on_update, check)

    async def state(self, thread_id: str) -> tuple[RunOutcome, Any]:
        name = await self.graph_of(thread_id)
        config = {"configurable": {"thread_id": thread_id}}
        async with self.graph(name) as graph:
            snapshot = await graph.aget_state(config)
            if not snapshot.values:
                raise ThreadNotFound(f"unknown thread {thread_id!r}")
            history = [h async for h in graph.aget_state_history(config)]
        return describe(thread_id, name, snapshot), (snapshot, history)
