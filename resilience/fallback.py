"""Fallback chains: who takes an agent's task over when the agent cannot do it.

An `AgentSpec` declares its chain (``fallback``), tried in order after the agent itself:

- ``FallbackHop(model="small")``: the same agent on another model (a tier or ``provider:model``);
- ``FallbackHop(agent="billing_rules")``: another agent of the registry (a rule-based twin);
- ``FallbackHop(human=True)``: a person answers, through an ``interrupt()`` that
  ``accord resume THREAD --respond TEXT`` (or ``--reject REASON``) answers.

In YAML a hop is a mapping (``{model: small}``, ``{agent: billing_rules}``, ``{human: true}``),
an agent id, or the word ``human``. A task moves on along its chain when its agent timed out,
failed after its retries, or its breaker is open; each hop is recorded with its cause
(:class:`HopCause`) in the task's record and the audit log. When the chain is exhausted the task
fails with the cause, and :func:`task_exhausted` is called with the :class:`Exhaustion`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from accord.errors import AccordError
from accord.resilience.breaker import BreakerOpen

logger = logging.getLogger(__name__)

HUMAN = "human"
"""The word a YAML chain uses for a person."""


class HopKind(StrEnum):
    """Who a hop of a chain hands the task to."""

    PRIMARY = "primary"
    """The agent itself (the first hop of every chain)."""
    MODEL = "model"
    """The same agent on another model."""
    AGENT = "agent"
    """Another agent."""
    HUMAN = "human"
    """A person, through an interrupt."""


class HopCause(StrEnum):
    """Why a hop did not finish the task and the next one took it."""

    TIMEOUT = "timeout"
    """The hop took longer than its bound (a model, a tool or the whole step)."""
    TRANSIENT = "transient"
    """It kept failing transiently (5xx, 429, dropped connections) until its retries ran out."""
    ERROR = "error"
    """It failed in a way another attempt would not change (a 4xx, a bug, a bad answer)."""
    BREAKER_OPEN = "breaker_open"
    """Its circuit breaker is open: no call was made."""
    DECLINED = "declined"
    """The person asked declined the task (``--reject``)."""
    DISABLED = "disabled"
    """The agent is switched off or retired (its feature flag): no call was made."""


class FallbackHop(BaseModel):
    """One hop of an agent's fallback chain: exactly one of ``model``, ``agent``, ``human``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = None
    """The same agent on this model (a tier name or ``provider:model``)."""
    agent: str | None = None
    """Another agent, by id."""
    human: bool = False
    """A person answers (an interrupt)."""

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"human": True} if value == HUMAN else {"agent": value}
        return value

    @model_validator(mode="after")
    def _one(self) -> FallbackHop:
        chosen = [n for n, v in (("model", self.model), ("agent", self.agent),
                                 ("human", self.human)) if v]
        if len(chosen) != 1:
            raise ValueError("a fallback hop names exactly one of model, agent or human"
                             + (f" (got {', '.join(chosen)})" if chosen else ""))
        return self

    @property
    def kind(self) -> HopKind:
        return HopKind.MODEL if self.model else HopKind.AGENT if self.agent else HopKind.HUMAN

    def __str__(self) -> str:
        return f"model {self.model}" if self.model else self.agent or HUMAN


def chain_of(value: Any) -> tuple[FallbackHop, ...]:
    """A spec's ``fallback`` value as a chain: None, one hop, or a list of them."""
    if value is None:
        return ()
    if isinstance(value, str | dict | FallbackHop):
        value = [value]
    return tuple(h if isinstance(h, FallbackHop) else FallbackHop.model_validate(h) for h in value)


def cause_of(error: BaseException) -> HopCause:
    """The cause a failed hop is recorded with."""
    from accord.agents.flags import AgentDisabled
    from accord.resilience.transient import is_timeout, is_transient

    if isinstance(error, AgentDisabled):
        return HopCause.DISABLED
    if isinstance(error, BreakerOpen):
        return HopCause.BREAKER_OPEN
    if is_timeout(error):
        return HopCause.TIMEOUT
    if isinstance(error, HumanDeclined):
        return HopCause.DECLINED
    return HopCause.TRANSIENT if is_transient(error) else HopCause.ERROR


class HumanDeclined(AccordError):
    """The person an escalated task went to declined it."""


@dataclass(frozen=True)
class Hop:
    """One hop a task took along its chain: who tried, on what, and how it ended."""

    index: int
    """0 for the agent itself, 1 for the first fallback, ..."""
    kind: HopKind
    """Who it was."""
    agent: str
    """The agent id (``human`` for a person)."""
    model: str | None = None
    """The model it ran on, for an LLM agent."""
    cause: HopCause | None = None
    """Why it did not finish the task; None for the hop that did."""
    error: str | None = None
    """The error (``Type: message``), for a failed hop."""
    calls: int = 0
    """Calls it made (model calls, or a rule-based agent's attempts)."""
    failures: int = 0
    """How many of them failed."""

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind.value, "agent": self.agent,
                "model": self.model, "cause": self.cause.value if self.cause else None,
                "error": self.error, "calls": self.calls, "failures": self.failures}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hop:
        cause = data.get("cause")
        return cls(int(data["index"]), HopKind(data["kind"]), data["agent"], data.get("model"),
                   HopCause(cause) if cause else None, data.get("error"),
                   int(data.get("calls") or 0), int(data.get("failures") or 0))

    def label(self) -> str:
        return f"{self.agent} ({self.model})" if self.kind is HopKind.MODEL else self.agent


@dataclass(frozen=True)
class Exhaustion:
    """A task whose agent and every fallback failed: what a dead letter needs."""

    thread_id: str
    """The thread."""
    task_id: str
    """The task."""
    node: str
    """The agent node."""
    agent: str
    """The agent id of the node's own spec."""
    version: str
    """That agent's version."""
    query: str
    """The task's request."""
    context: dict[str, Any]
    """The shared-context values handed to the agent."""
    hops: tuple[Hop, ...]
    """Every hop tried, each with its cause."""
    error: str
    """The last error."""
    checkpoint_id: str | None = None
    """The checkpoint the step started from, when known."""
    attempts: tuple[dict[str, Any], ...] = field(default=())
    """Every failed attempt of every hop."""

    @property
    def key(self) -> str:
        """One key per exhausted task (a step re-run after a crash reports the same key)."""
        return f"{self.thread_id}:{self.task_id}:{self.node}"


ExhaustedHook = Callable[[Exhaustion], Awaitable[None] | None]
"""What a workflow calls when a task's chain is exhausted (``Workflow(on_exhausted=...)``)."""


async def task_exhausted(exhaustion: Exhaustion, hook: ExhaustedHook | None = None) -> None:
    """Every task whose chain is exhausted comes through here (the one place to hand it on).

    Logs it, then calls the workflow's ``on_exhausted`` hook, if any. Called inside the agent
    node, before the task is marked failed: a step re-run after a crash calls it again with the
    same :attr:`Exhaustion.key`.
    """
    logger.warning("task %s on thread %s exhausted its fallback chain at %s: %s",
                   exhaustion.task_id, exhaustion.thread_id, exhaustion.node, exhaustion.error)
    if hook is not None:
        answer = hook(exhaustion)
        if answer is not None:
            await answer


__all__ = [
    "HUMAN",
    "ExhaustedHook",
    "Exhaustion",
    "FallbackHop",
    "Hop",
    "HopCause",
    "HopKind",
    "HumanDeclined",
    "cause_of",
    "chain_of",
    "task_exhausted",
]
