"""``ModelCallGuard``: rate limits and budgets on each model call of an LLM agent's own loop.

A langchain ``AgentMiddleware`` that the workflow adds to every LLM agent of a graph with
limits. Before a call: the budget's choice (:func:`accord.guardrails.budget.decide`: the agent's
model, a smaller tier, or ``BudgetExhausted`` for the agent node to hand the task to the
rule-based fallback or stop it), then the model's requests/s and the tokens/min limits. After
it: the tokens of the model's usage metadata, priced, in ``accord_usage``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import AIMessage
from langchain_core.messages.utils import count_tokens_approximately

from accord.guardrails.budget import Choice, decide
from accord.guardrails.call import CALL
from accord.guardrails.enforce import Guards
from accord.records import AuditKind


def _usage(response: Any) -> dict[str, int]:
    """The summed usage metadata of a model response's messages."""
    if isinstance(response, AIMessage):
        messages = [response]
    else:
        inner = getattr(response, "model_response", response)
        messages = list(getattr(inner, "result", None) or [])
    total = {"input_tokens": 0, "output_tokens": 0}
    for message in messages:
        usage = getattr(message, "usage_metadata", None) or {}
        for key in total:
            total[key] += int(usage.get(key) or 0)
    return total


class ModelCallGuard(AgentMiddleware):
    """Budgets and rate limits around one agent's model calls."""

    def __init__(self, spec: Any, guards: Guards, models: Any, *, has_rules: bool) -> None:
        super().__init__()
        self.spec = spec
        self.guards = guards
        self.models = models
        self.has_rules = has_rules
        """Whether the agent falls back to a rule-based agent (else a spent budget stops it)."""
        self.budgeted = guards.has_budgets or getattr(spec, "budget", None) is not None

    async def awrap_model_call(self, request: Any,
                               handler: Callable[[Any], Awaitable[Any]]) -> Any:
        call = CALL.get()
        if call is None:  # not inside an accord agent node
            return await handler(request)
        system = [request.system_message] if request.system_message is not None else []
        tokens_in = count_tokens_approximately([*system, *request.messages])
        ref = self.spec.model or "small"
        if self.budgeted:
            remaining = await self.guards.remaining(call, self.spec)
            ladder = [(r, self.guards.estimate(self.models.resolve_name(r), tokens_in))
                      for r in self.guards.ladder(ref)]
            decision = decide(remaining.usd, ladder, has_rules=self.has_rules)
            if decision.choice in (Choice.RULES, Choice.STOP):
                raise remaining.exhausted()
            if decision.choice is Choice.SMALLER:
                if not any(e["kind"] == AuditKind.BUDGET_DOWNGRADE for e in call.events):
                    call.note(AuditKind.BUDGET_DOWNGRADE, model=ref, to=decision.model,
                              left=round(remaining.usd, 6), scope=remaining.scope.value
                              if remaining.scope else None,
                              estimate=round(ladder[0][1], 6))
                request = request.override(model=self.models(decision.model))
                ref = decision.model or ref
        model = self.models.resolve_name(ref)
        reserved = tokens_in + self.guards.limits.expected_output_tokens
        await self.guards.before_model(call, self.spec, model, reserved)
        response = await handler(request)
        await self.guards.record(call, self.spec, model, _usage(response), reserved)
        return response


__all__ = ["ModelCallGuard"]
