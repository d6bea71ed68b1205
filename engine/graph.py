"""``AccordGraph``: the compiled graph that carries accord's guarantees to every entry point.

``graph.invoke/ainvoke/stream/astream`` from Python or a notebook, the ``accord`` CLI,
``langgraph dev`` and the Agent Server (which call ``astream``/``astream_events``), workers:
every run of an accord graph passes through :meth:`AccordGraph.astream`, which

1. checks the request against the input schema and the graph's input guardrails (nothing is
   saved when it is refused; the refusal is recorded in the audit log);
2. claims the thread through accord's saver: one writer at a time (``ThreadBusy`` for the
   second), a fencing token for every write, the thread index kept current, the request
   recorded before work starts, and the thread's state checked against the kind of run (a new
   request is refused while an approval is pending, a decision when none is);
3. runs the graph with that claim in its config, so the saver writes each step when its side
   effects require it, with its audit events, and refuses the writes of a run that lost its
   thread;
4. ends the run: the final status (``done``, ``interrupted`` with the pending approval, or
   ``failed`` with the cause) in the same transaction as the last checkpoint.

Synchronous entry points run the same code on the portal (``portal.py``). The graph survives
``copy()`` (what ``langgraph dev`` does to lend it a checkpointer): the engine settings travel
as a constructor argument.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables.config import merge_configs
from langgraph._internal._constants import (
    CONFIG_KEY_CHECKPOINT_ID,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_THREAD_ID,
)
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from accord.agents.ledger import decision_key
from accord.checkpoints.accord_saver import AccordSaver, ClaimRefused, RunEnd
from accord.checkpoints.errors import ThreadNotFound
from accord.checkpoints.foreign import journaled
from accord.checkpoints.runs import RUN_KEY, RunHandle, RunKind, RunSpec
from accord.engine.errors import (
    DecisionRecorded,
    NotWaiting,
    RunFailed,
    ThreadIdMissing,
    ThreadMovedOn,
    ThreadUnfinished,
    ThreadWaiting,
)
from accord.engine.inputs import (
    dump_request,
    load_request,
    request_task,
    request_texts,
    validate_request,
)
from accord.engine.portal import PORTAL
from accord.engine.untraced import install as untraced_install
from accord.guardrails.base import GuardrailTripwireTriggered, GuardStop, run_input_guardrails
from accord.guardrails.call import end_user
from accord.guardrails.redaction import redact_request
from accord.observability.runs import observe_run
from accord.observability.steps import guardrail_tripped
from accord.records import AuditKind, ThreadStatus, audit_event

logger = logging.getLogger(__name__)

DEFAULT_DURABILITY = "sync"
"""LangGraph hands every step to accord's saver, which decides when each is written."""


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs to know about a graph beyond its nodes."""

    input_guardrails: tuple[Any, ...] = ()
    """Checks on every new request (``accord.guardrails``)."""
    lock_wait: float = 0.0
    """Seconds a run waits for a busy thread before ``ThreadBusy`` (config
    ``configurable.accord_lock_wait`` overrides it per run)."""
    graph_ref: str | None = None
    """How to load the graph again (a catalog name or ``module:factory``); the thread index
    records it, or the graph's name when it is not known."""
    guards: Any = field(default=None, compare=False, repr=False)
    """The graph's rate limits and budgets (``accord.guardrails.enforce.Guards``): a new
    request is checked against the end user's and the day's before anything is saved."""
    workflow: Any = field(default=None, compare=False, repr=False)
    """The ``accord.graphs.Workflow`` the graph was compiled from (the CLI compiles it again on
    its own saver when a reference names the compiled graph)."""


@dataclass
class _Run:
    """One planned run: the thread, what it does and how to call LangGraph."""

    saver: AccordSaver | None
    """None: a plain LangGraph run (a subgraph call, or a graph without a checkpointer)."""
    spec: RunSpec | None
    input: Any
    config: dict[str, Any]
    kwargs: dict[str, Any]
    checkpointer: Any = None
    """The checkpointer to lend LangGraph for the run (None: the graph's own)."""


class AccordGraph(CompiledStateGraph):
    """A compiled accord workflow; use it as any LangGraph graph."""

    def __init__(self, *, engine: EngineSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine or EngineSettings()

    # entry points ------------------------------------------------------------------------------
    async def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        untraced_install()
        run = await self._plan(input, config, kwargs)
        nested = (run.config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINT_NS)
        if run.spec is None and nested:  # a subgraph call: the parent's run observes it
            async for chunk in super().astream(run.input, config, **kwargs):
                yield chunk
            return
        async with observe_run(self.engine.graph_ref or self.name, run) as seen:
            if run.saver is None:  # no checkpointer: a plain LangGraph run, observed
                async for chunk in seen.stream(super().astream(run.input, config, **kwargs)):
                    yield chunk
                return
            handle = await seen.claim(self._claim(run))
            error: BaseException | None = None
            try:
                graph_input = self._input_for(run, handle)
                lent = {CONFIG_KEY_CHECKPOINTER: run.checkpointer} if run.checkpointer else {}
                config = {**run.config, "configurable": {
                    **run.config["configurable"], RUN_KEY: handle, **lent}}
                async for chunk in seen.stream(super().astream(graph_input, config,
                                                               **run.kwargs)):
                    yield chunk
            except BaseException as exc:
                error = exc
                raise
            finally:
                end = await self._end(run.saver, handle, error)
            if handle.failure is not None and end is not None and end.status is ThreadStatus.FAILED:
                # a node failed the run without raising (an approved action that failed): the
                # thread is recorded failed with the cause; the caller hears it as an error too
                raise RunFailed(handle.thread_id, handle.failure.node, handle.failure.cause)

    def stream(self, input: Any, config: Any = None, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        yield from PORTAL.iterate(lambda: self.astream(input, config, **kwargs))

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        # ainvoke on the portal: one hand-over between threads per run, not one per chunk
        return PORTAL.run(lambda: self.ainvoke(input, config, **kwargs))

    def bulk_update_state(self, config: Any, supersteps: Sequence[Sequence[Any]]) -> Any:  # type: ignore[override]
        return PORTAL.run(lambda: self.abulk_update_state(config, supersteps))

    async def abulk_update_state(self, config: Any, supersteps: Sequence[Sequence[Any]]) -> Any:  # type: ignore[override]
        saver, lend = self._saver(merge_configs(self.config, config))
        thread_id = (config or {}).get("configurable", {}).get(CONFIG_KEY_THREAD_ID)
        if saver is None or thread_id is None:
            return await super().abulk_update_state(config, supersteps)
        spec = RunSpec(thread_id=str(thread_id), kind=RunKind.UPDATE,
                       graph=self.engine.graph_ref or self.name,
                       triggers=self._triggers(), wait=self._wait(config))
        handle = await saver.abegin_run(spec)
        error: BaseException | None = None
        try:
            lent = {CONFIG_KEY_CHECKPOINTER: lend} if lend else {}
            patched = {**config, "configurable": {**config["configurable"], RUN_KEY: handle, **lent}}
            result = await super().abulk_update_state(patched, supersteps)
            # an edit says nothing of what runs next: read it back (through the run, so what the
            # saver held back is written first) for the thread index
            snapshot = await self.aget_state({**result, "configurable": {
                **result["configurable"], RUN_KEY: handle, **lent}})
            handle.final = not snapshot.next
            handle.interrupts = [i for task in snapshot.tasks for i in task.interrupts]
            return {**result, "configurable": {k: v for k, v in result["configurable"].items()
                                               if k not in (RUN_KEY, CONFIG_KEY_CHECKPOINTER)}}
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._end(saver, handle, error)

    # planning ----------------------------------------------------------------------------------
    def _saver(self, config: dict[str, Any]) -> tuple[AccordSaver | None, Any]:
        """accord's saver for the run's claims, and the checkpointer LangGraph should use
        (None: the graph's own). A saver the server wrapped (``langgraph dev`` puts an adapter
        around a custom checkpointer) is found behind the wrapper; the wrapper stays in place.
        A foreign saver gets accord's journal in memory beside it."""
        configurable = config.get("configurable") or {}
        if configurable.get(CONFIG_KEY_CHECKPOINT_NS):
            return None, None  # called as a subgraph: the parent's run holds the thread
        saver = self._resolve_checkpointer(config)
        if saver is None or saver is False:
            return None, None
        found = _accord_behind(saver)
        if found is not None:
            return found, None
        _warn_foreign(saver)
        wrapped = journaled(saver)
        return wrapped, wrapped

    def _triggers(self) -> frozenset[str]:
        return frozenset(t for node in self.nodes.values() for t in node.triggers)

    def _delta_channels(self) -> tuple[str, ...]:
        return tuple(sorted(k for k, ch in self.channels.items() if isinstance(ch, DeltaChannel)))

    def _wait(self, config: Any) -> float:
        configurable = (config or {}).get("configurable") or {}
        return float(configurable.get("accord_lock_wait", self.engine.lock_wait))

    async def _plan(self, input: Any, config: Any, kwargs: dict[str, Any]) -> _Run:
        merged = merge_configs(self.config, config)
        configurable = merged.get("configurable") or {}
        if configurable.get(CONFIG_KEY_CHECKPOINT_NS):
            return _Run(None, None, input, merged, kwargs)
        kind, request = self._kind(input, configurable)
        saver, lend = self._saver(merged)
        thread_id = configurable.get(CONFIG_KEY_THREAD_ID)
        if request is not None:
            tripped = next((found for text in request_texts(request) if (
                found := run_input_guardrails(self.engine.input_guardrails, text))), None)
            if tripped is not None:
                guardrail_tripped(tripped, thread_id=thread_id, graph=self.engine.graph_ref)
                if saver is not None and thread_id is not None:
                    event = audit_event(AuditKind.INPUT_REFUSED, **tripped.as_dict())
                    await saver._offload(saver.record_refusal, str(thread_id), event)
                raise GuardrailTripwireTriggered(tripped)
            # personal data never reaches a model, the recorded request or a checkpoint
            request = await redact_request(self.engine.input_guardrails, request, saver,
                                           thread_id)
            if self.engine.guards is not None:
                await self._admit(saver, thread_id, configurable)
        if saver is not None and thread_id is None and not configurable.get(CONFIG_KEY_CHECKPOINT_ID):
            raise ThreadIdMissing()
        if saver is None or thread_id is None:
            plain = request if request is not None else input
            return _Run(None, None, plain, merged, kwargs)
        kwargs = dict(kwargs)
        during = kwargs.pop("checkpoint_during", None)
        durability = kwargs.get("durability") or ("exit" if during is False else None)
        kwargs["durability"] = "exit" if durability == "exit" else DEFAULT_DURABILITY
        spec = RunSpec(
            thread_id=str(thread_id), kind=kind, graph=self.engine.graph_ref or self.name,
            input=dump_request(request) if request is not None else None,
            task_id=request_task(request) if request is not None else None,
            triggers=self._triggers(), delta_channels=self._delta_channels(),
            wait=self._wait(config), expect_epoch=_expected_epoch(configurable),
        )
        return _Run(saver, spec, request if request is not None else input, merged, kwargs, lend)

    async def _admit(self, saver: AccordSaver | None, thread_id: Any,
                     configurable: dict[str, Any]) -> None:
        """The end user's rate limit and budgets for a new request; a refusal is recorded
        (``input_refused``) and raised, nothing else is saved."""
        try:
            await self.engine.guards.admit_request(end_user(configurable), saver)
        except GuardStop as refused:
            if saver is not None and thread_id is not None:
                event = audit_event(AuditKind.INPUT_REFUSED, guardrail=refused.audit_kind.value,
                                    **refused.as_dict())
                await saver._offload(saver.record_refusal, str(thread_id), event)
            raise

    @staticmethod
    def _kind(input: Any, configurable: dict[str, Any]) -> tuple[RunKind, dict[str, Any] | None]:
        explicit = bool(configurable.get(CONFIG_KEY_CHECKPOINT_ID))
        request = None if input is None or isinstance(input, Command) else validate_request(input)
        if explicit:  # time travel: from a checkpoint the caller chose, whatever the thread's state
            return RunKind.REPLAY, request
        if isinstance(input, Command):
            return (RunKind.RESUME if input.resume is not None else RunKind.UPDATE), None
        if input is None:
            return RunKind.CONTINUE, None
        return RunKind.NEW, request

    async def _claim(self, run: _Run) -> RunHandle:
        try:
            return await run.saver.abegin_run(run.spec)
        except ClaimRefused as refused:
            recorded = await self._recorded_decision(run, refused)
            if recorded is not None:
                raise DecisionRecorded(run.spec.thread_id, recorded) from None
            raise _refusal(refused) from None

    async def _recorded_decision(self, run: _Run, refused: ClaimRefused) -> dict[str, Any] | None:
        """The decision already recorded for the approval a stopped thread was acting on, when
        a new decision arrives for it (the process died after recording it, perhaps after its
        action ran): that decision is a fact, the new one cannot replace it."""
        previous = refused.claim.previous
        if run.spec.kind is not RunKind.RESUME or previous is None or (
            previous.status is not ThreadStatus.RUNNING
        ):
            return None
        snapshot = await self.aget_state(run.config)
        pending = (snapshot.values or {}).get("pending")
        if not isinstance(pending, dict):
            return None
        actions = pending.get("actions") or [pending]  # a record of one action, from before
        keys = [a.get("idempotency_key") for a in actions if isinstance(a, dict)]
        if not keys or not all(keys):
            return None
        found, recorded = await run.saver._offload(run.saver.recorded, run.spec.thread_id,
                                                   decision_key(*keys))
        return recorded if found and isinstance(recorded, dict) else None

    @staticmethod
    def _input_for(run: _Run, handle: RunHandle) -> Any:
        if run.spec.kind is RunKind.CONTINUE and handle.recorded_input:
            # the request was recorded but its first checkpoint never saved: submit it again
            return load_request(handle.recorded_input)
        return run.input

    @staticmethod
    async def _end(saver: AccordSaver, handle: RunHandle,
                   error: BaseException | None) -> RunEnd | None:
        try:
            return await saver.aend_run(handle, error)
        except BaseException:
            if error is None:
                raise
            logger.exception("could not record the end of a failed run on %s", handle.thread_id)
            return None


def _expected_epoch(configurable: dict[str, Any]) -> int | None:
    value = configurable.get(ThreadMovedOn.EXPECT_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{ThreadMovedOn.EXPECT_KEY} must be an epoch (an int >= 0), not {value!r}")
    return value


def _refusal(refused: ClaimRefused) -> Exception:
    """The user-facing error for a thread whose state refuses a run."""
    spec, previous = refused.spec, refused.claim.previous
    thread = spec.thread_id
    epoch = previous.epoch if previous is not None else 0
    if spec.expect_epoch is not None and epoch != spec.expect_epoch:
        return ThreadMovedOn(thread, spec.expect_epoch, epoch)
    if previous is None:
        return ThreadNotFound(f"unknown thread {thread!r}")
    if spec.kind is RunKind.NEW:
        if previous.status is ThreadStatus.INTERRUPTED:
            return ThreadWaiting(thread, previous.pending)
        return ThreadUnfinished(thread, previous.error)
    state = {ThreadStatus.DONE: "finished", ThreadStatus.RUNNING: "stopped mid-run",
             ThreadStatus.FAILED: "failed"}.get(previous.status, previous.status.value)
    return NotWaiting(f"thread {thread!r} is {state}; it is not waiting for a decision")


def _accord_behind(saver: Any, depth: int = 3) -> AccordSaver | None:
    """accord's saver, itself or behind a server's wrapper (``_inner``/``inner``)."""
    for _ in range(depth):
        if isinstance(saver, AccordSaver):
            return saver
        inner = vars(saver).get("_inner") or vars(saver).get("inner")
        if inner is None:
            return None
        saver = inner
    return saver if isinstance(saver, AccordSaver) else None


_warned: set[str] = set()


def _warn_foreign(saver: Any) -> None:
    name = type(saver).__name__
    if name not in _warned:
        _warned.add(name)
        logger.warning(
            "checkpointer %s is not accord's: the thread index, audit log, tool ledger, locks "
            "and fencing of its runs live in this process only; open accord's saver with "
            "accord.checkpoints.open_saver(url) to keep them in the database", name)


__all__ = ["AccordGraph", "EngineSettings"]
