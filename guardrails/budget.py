"""Cost budgets: what a call may cost, and what happens when a budget cannot pay for it.

:func:`decide` is the whole policy, one pure function: the agent's own model when the budget
left pays for the call's estimated cost, else the first smaller tier that it pays for, else the
agent's rule-based fallback (which costs nothing), else a clear stop. A new request from an end
user whose daily budget is spent (or when the graph's day is) is refused at the engine's entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from accord.guardrails.base import GuardStop
from accord.guardrails.limits import Scope
from accord.records import AuditKind


class BudgetExhausted(GuardStop):
    """A cost budget cannot pay for a call (or a new request): it was not made."""

    audit_kind = AuditKind.BUDGET_EXHAUSTED

    def __init__(self, scope: Scope, key: str | None, spent: float, limit: float) -> None:
        self.scope, self.key, self.spent, self.limit = scope, key, spent, limit
        whose = {Scope.AGENT: f"agent {key!r} today", Scope.USER: f"user {key!r} today",
                 Scope.RUN: "this request", Scope.DAY: "the graph today"}[scope]
        super().__init__(f"budget exhausted: {whose} spent ${spent:.4f} of ${limit:.4f}")

    def as_dict(self) -> dict[str, Any]:
        return {"reason": str(self), "scope": self.scope.value, "key": self.key,
                "spent": round(self.spent, 6), "limit": self.limit}


class Choice(StrEnum):
    """What a budget lets an agent call do."""

    RUN = "run"
    """Call the agent's own model."""
    SMALLER = "smaller"
    """Call a smaller (cheaper) tier instead."""
    RULES = "rules"
    """Hand the task to the agent's rule-based fallback."""
    STOP = "stop"
    """Stop the task with a clear message: nothing is left that the budget pays for."""


@dataclass(frozen=True)
class Remaining:
    """The tightest budget over one call: what it has left and which one it is."""

    usd: float
    """USD left (``inf`` with no budget)."""
    scope: Scope | None = None
    """The budget's scope (None: no budget)."""
    key: str | None = None
    """Its agent id or user id."""
    spent: float = 0.0
    """What it has spent."""
    limit: float = math.inf
    """Its limit."""

    def exhausted(self) -> BudgetExhausted:
        return BudgetExhausted(self.scope or Scope.RUN, self.key, self.spent, self.limit)


@dataclass(frozen=True)
class BudgetDecision:
    """What :func:`decide` chose, and the model to call (RUN, SMALLER)."""

    choice: Choice
    """The choice."""
    model: str | None = None
    """The model reference (tier or name) to call, for RUN and SMALLER."""
    estimate: float = 0.0
    """The call's estimated cost on that model (USD)."""


def decide(remaining: float, ladder: Sequence[tuple[str, float]], *,
           has_rules: bool) -> BudgetDecision:
    """The budget's choice for one call.

    ``ladder`` is the agent's model then each smaller tier, with the call's estimated cost on
    each; ``has_rules`` whether the agent has a rule-based fallback.
    """
    for index, (model, estimate) in enumerate(ladder):
        if estimate <= remaining:
            return BudgetDecision(Choice.RUN if index == 0 else Choice.SMALLER, model, estimate)
    return BudgetDecision(Choice.RULES if has_rules else Choice.STOP)


__all__ = ["BudgetDecision", "BudgetExhausted", "Choice", "Remaining", "decide"]
