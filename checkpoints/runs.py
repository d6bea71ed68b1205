"""A run as accord's saver sees it: who holds the thread, and which steps to write when.

The engine opens a :class:`RunHandle` before a graph runs (``saver.begin_run``) and passes it
in the run's config; every checkpoint and write of the run then reaches the saver with it.

**Durability follows side effects.** LangGraph saves each super-step (``durability="sync"``);
accord's saver decides, step by step, whether the step must be on disk before the run goes
on, or can travel with the next write:

- the input checkpoint and the ``__start__`` step that maps it are deferred: the request
  itself is already recorded by ``begin_run``, and re-mapping it costs nothing;
- the checkpoint a run ends on (no node left to run) is deferred to ``end_run``, which writes
  it together with the thread's final status in one transaction;
- an interrupt and the writes of a failed task are deferred to ``end_run`` too: the run stops
  right after them;
- a resume value travels with the next write: the approval node records the decision in the
  ledger (durably) before the action it allows runs;
- a tool result recorded in the ledger writes everything deferred before it, in the same
  transaction;
- every other checkpoint (a step with a node left to run) is written at once, with whatever
  was deferred before it.

A crash therefore never loses a step that did something (a tool call, a decision); it can lose
only steps that re-run at no cost to the outside world, the way a step cut short by the crash
would re-run anyway. Writes and the checkpoint that follows them go in one transaction, so
LangGraph's ``put_writes``/``put`` ordering (langgraph#8039) cannot open a window.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from langgraph._internal._constants import INTERRUPT, TASKS

RUN_KEY = "__accord_run"
"""Key of the :class:`RunHandle` in a run's ``configurable`` (dunder: never copied to metadata)."""


class RunKind(StrEnum):
    """What a run does to its thread; decides which thread states may start it."""

    NEW = "new"
    """A new request (input messages)."""
    RESUME = "resume"
    """An answer to a pending interrupt (``Command(resume=...)``)."""
    CONTINUE = "continue"
    """No input: go on from the last checkpoint (after a crash or a failure)."""
    UPDATE = "update"
    """A state edit (``update_state``) or a ``Command`` without a resume value."""
    REPLAY = "replay"
    """A run from an explicitly chosen checkpoint (time travel)."""


@dataclass(frozen=True)
class RunSpec:
    """What the engine tells the saver about a run before it starts."""

    thread_id: str
    """The thread."""
    kind: RunKind
    """What the run does."""
    graph: str | None = None
    """The graph's name, recorded in the thread index."""
    input: Any = None
    """The request (JSON), recorded before work starts; ``None`` keeps a recorded one."""
    task_id: str | None = None
    """The task a new request opens (no tool result can be recorded for it yet)."""
    triggers: frozenset[str] = frozenset()
    """Channels that start a node: a checkpoint that updated none of them ends the run."""
    delta_channels: tuple[str, ...] = ()
    """The graph's ``DeltaChannel`` keys: read with the checkpoint in one transaction."""
    wait: float = 0.0
    """Seconds to wait for a busy thread before ``ThreadBusy``."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """This run's id, recorded while it holds the thread."""
    trace: str | None = None
    """The W3C ``traceparent`` of the run's span, recorded with the thread."""
    expect_epoch: int | None = None
    """The epoch the thread must still have when claimed (0: a thread the index does not know
    yet), or None for any: a run decided on what the index said a while ago (a queued job) is
    refused once another run has claimed the thread since."""


@dataclass
class PendingPut:
    """A checkpoint the saver holds until the next durable point."""

    config: dict[str, Any]
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    new_versions: dict[str, Any]


@dataclass
class PendingWrites:
    """A task's writes the saver holds until the next durable point."""

    config: dict[str, Any]
    writes: list[tuple[str, Any]]
    task_id: str
    task_path: str


@dataclass
class PendingResult:
    """A tool result held until the next durable point (the tool is idempotent by key)."""

    key: str
    tool: str
    text: str


@dataclass(frozen=True)
class NodeFailure:
    """A node that ended the run ``failed`` without raising (an approved action that failed:
    its state, the failed task, is saved; the thread is failed with the cause)."""

    node: str
    """The node that failed the run."""
    cause: str
    """Why, one line."""


@dataclass
class RunHandle:
    """One run's hold on its thread and what it has not written yet."""

    spec: RunSpec
    """What the run is."""
    epoch: int
    """The fencing token: writes are refused once another run has claimed the thread."""
    previous: Any = None
    """The thread's index record before this run claimed it (``ThreadRecord`` or None)."""
    recorded_input: Any = None
    """The request recorded for the thread and not yet saved in a checkpoint, if any."""
    has_checkpoints: bool = True
    """Whether the thread had any checkpoint when the run began."""
    has_ledger: bool = True
    """Whether the thread had any recorded tool result when the run began."""
    backend: Any = None
    """What the saver keeps for the run (its lock)."""
    saver: Any = field(default=None, repr=False)
    """The saver that claimed the thread (``AccordSaver``): nodes reach the ledger through it."""
    pending: list[PendingPut | PendingWrites | PendingResult] = field(default_factory=list)
    """Checkpoints and writes deferred to the next durable point, in arrival order."""
    interrupts: list[Any] = field(default_factory=list)
    """Interrupts raised during the run (``langgraph.types.Interrupt``)."""
    head: str | None = None
    """The last root checkpoint this run produced."""
    final: bool = False
    """Whether that checkpoint has no node left to run."""
    head_values: dict[str, Any] | None = field(default=None, repr=False)
    """The channel values of that checkpoint (what a dead letter of the run records)."""
    input_saved: bool = False
    """Whether the recorded request has reached a durable checkpoint."""
    fenced: bool = False
    """Set once a write was refused: the run has lost its thread."""
    store_error: BaseException | None = field(default=None, repr=False)
    """The error of accord's own database that stopped the run, if one did: the thread is left
    ``running`` (its saved steps stand) for a retry to continue, not failed."""
    ended: bool = False
    """Set by ``end_run``."""
    recorded_events: set[str] = field(default_factory=set)
    """Audit event ids this run has written (the window repeats them in later checkpoints)."""
    results: dict[str, str] = field(default_factory=dict)
    """Tool results this run recorded in the ledger (key -> JSON text)."""
    failure: NodeFailure | None = None
    """Set by :meth:`fail`: the run ends ``failed`` with this cause once its last step is saved."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    """Serialises the run's own saver calls (LangGraph saves in the background)."""
    _after_input: bool = False

    @property
    def thread_id(self) -> str:
        return self.spec.thread_id

    def fail(self, node: str, cause: str) -> None:
        """End the run ``failed`` with ``cause`` when it ends (the node's step is still saved)."""
        self.failure = NodeFailure(node, cause)

    # policy -----------------------------------------------------------------------------------
    def on_put(self, put: PendingPut) -> bool:
        """Hold a checkpoint; True when it must be written now (see the module docstring)."""
        self.pending.append(put)
        self.head = put.checkpoint["id"]
        self.head_values = put.checkpoint.get("channel_values")
        source = put.metadata.get("source")
        updated = put.checkpoint.get("updated_channels")
        self.final = updated is not None and not (
            set(updated) & (self.spec.triggers | {TASKS})
        )
        if source == "input":
            self._after_input = True
            return False
        if self._after_input:  # the __start__ step: it only maps the input to the state
            self._after_input = False
            return False
        return not self.final

    def on_writes(self, writes: PendingWrites) -> bool:
        """Hold a task's writes until the next durable point (never written on their own)."""
        self.pending.append(writes)
        for channel, value in writes.writes:
            if channel == INTERRUPT:
                self.interrupts.extend(value if isinstance(value, list | tuple) else [value])
        return False

    delta_cache: dict[str, Any] = field(default_factory=dict)
    """Delta-channel history read together with the run's first checkpoint, by checkpoint id."""

    def take(self) -> list[PendingPut | PendingWrites | PendingResult]:
        """Everything deferred so far (the caller writes it or the run is lost)."""
        taken, self.pending = self.pending, []
        return taken


def interrupt_payloads(interrupts: list[Any]) -> list[dict[str, Any]]:
    """Interrupts as JSON values: ``[{"id": ..., "value": ...}]``."""
    out = []
    for item in interrupts:
        value = getattr(item, "value", item)
        out.append({"id": getattr(item, "id", None), "value": value})
    return out


__all__ = [
    "RUN_KEY",
    "NodeFailure",
    "PendingPut",
    "PendingResult",
    "PendingWrites",
    "RunHandle",
    "RunKind",
    "RunSpec",
    "interrupt_payloads",
]
