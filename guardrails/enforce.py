"""``Guards``: a graph's rate limits and budgets at run time, where the engine applies them.

- a new request: the end user's requests/s, and the user's and the day's budgets
  (:meth:`Guards.admit_request`, at the engine's entry, before anything is saved);
- an agent call: the agent's requests/s (:meth:`Guards.admit_agent`, in the agent node);
- a model call inside an LLM agent: the model's requests/s, tokens/min of the agent, the model
  and the user, and the budget's choice of model (:class:`accord.guardrails.model_guard.
  ModelCallGuard`), then the call's usage recorded (:meth:`Guards.record`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from typing import Any

from accord.guardrails.budget import BudgetExhausted, Remaining
from accord.guardrails.call import CallContext
from accord.guardrails.limits import BudgetSpec, Limits, LimitsConfigError, RateLimitSpec, Scope
from accord.guardrails.rate_limit import RateLimiters, request_quota, token_quota
from accord.guardrails.usage import MemoryUsage, UsageRecord, UsageStore, today, usage_for


class Guards:
    """The rate limits and budgets of one graph, with the buckets they count in."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.limiters = RateLimiters(limits.backend)
        self._local = MemoryUsage()
        """Usage of runs without accord's saver (kept in this process)."""

    # rules ----------------------------------------------------------------------------------
    def rate_rules(self, scope: Scope, key: str | None,
                   spec: Any = None) -> list[RateLimitSpec]:
        if key is None:
            return []
        found: list[RateLimitSpec] = [r for r in self.limits.rate_limits
                                      if r.scope is scope and r.key in (None, key)]
        own = getattr(spec, "rate_limit", None) if scope is Scope.AGENT else None
        return [*found, own] if own is not None else found

    def budget_rules(self, scope: Scope, key: str | None, spec: Any = None) -> list[BudgetSpec]:
        if key is None and scope in (Scope.AGENT, Scope.USER, Scope.RUN):
            return []
        found: list[BudgetSpec] = [b for b in self.limits.budgets
                                   if b.scope is scope and b.key in (None, key)]
        own = getattr(spec, "budget", None) if scope is Scope.AGENT else None
        return [*found, own] if own is not None else found

    @property
    def has_budgets(self) -> bool:
        return bool(self.limits.budgets)

    def usage(self, saver: Any) -> UsageStore:
        return usage_for(saver) if saver is not None else self._local

    def validate(self, agents: Iterable[Any], resolve: Any) -> None:
        """Every model an agent with a budget may call has a price (it names the agent)."""
        for spec in agents:
            if getattr(spec, "kind", None) != "llm":
                continue
            if not (self.has_budgets or getattr(spec, "budget", None) is not None):
                continue
            for ref in self.ladder(spec.model):
                self.limits.price(resolve(ref), where=f"agent {spec.id}, model {ref}")

    def ladder(self, model: str) -> list[str]:
        """The agent's model then each smaller tier (references the resolver takes)."""
        tiers = list(self.limits.tiers)
        return [model, *tiers[tiers.index(model) + 1:]] if model in tiers else [model]

    # entry ----------------------------------------------------------------------------------
    async def admit_request(self, user: str | None, saver: Any) -> None:
        """A new request: the user's requests/s, the user's and the day's budgets."""
        for rule in self.rate_rules(Scope.USER, user):
            quota = request_quota(Scope.USER, user, rule)  # type: ignore[arg-type]
            if quota is not None:
                await self.limiters.acquire(quota)
        store = self.usage(saver)
        floor = self.cheapest_call()
        for scope, key in ((Scope.USER, user), (Scope.DAY, None)):
            for rule in self.budget_rules(scope, key):
                spent = await asyncio.to_thread(store.spent, scope, key, today())
                if rule.usd - spent <= floor:  # not even the cheapest model call is paid for
                    raise BudgetExhausted(scope, key, spent, rule.usd)

    def cheapest_call(self) -> float:
        """USD of the cheapest priced model's expected completion alone: a budget with no more
        left pays for no model call, so a new request is refused."""
        out = self.limits.expected_output_tokens
        return min((p.cost(0, out) for p in self.limits.prices.values()), default=0.0)

    async def admit_agent(self, call: CallContext, spec: Any) -> None:
        """An agent call: the agent's requests/s."""
        for rule in self.rate_rules(Scope.AGENT, spec.id, spec):
            quota = request_quota(Scope.AGENT, spec.id, rule)
            if quota is not None:
                await self.limiters.acquire(quota)

    # model calls ------------------------------------------------------------------------------
    def _token_quotas(self, call: CallContext, spec: Any, model: str) -> list[Any]:
        quotas = []
        for scope, key, own in ((Scope.AGENT, spec.id, spec), (Scope.MODEL, model, None),
                                (Scope.USER, call.user, None)):
            for rule in self.rate_rules(scope, key, own):
                quota = token_quota(scope, key, rule)  # type: ignore[arg-type]
                if quota is not None:
                    quotas.append(quota)
        return quotas

    async def before_model(self, call: CallContext, spec: Any, model: str, tokens: int) -> None:
        """A model call: the model's requests/s, then ``tokens`` reserved on every tokens/min
        limit of the agent, the model and the user."""
        for rule in self.rate_rules(Scope.MODEL, model):
            quota = request_quota(Scope.MODEL, model, rule)
            if quota is not None:
                await self.limiters.acquire(quota)
        for quota in self._token_quotas(call, spec, model):
            await self.limiters.acquire(quota, tokens)

    async def remaining(self, call: CallContext, spec: Any) -> Remaining:
        """The tightest budget over a call of ``spec`` (``inf`` without budgets)."""
        store = self.usage(call.saver)
        day = today()
        tightest = Remaining(math.inf)
        for scope, key, own in ((Scope.AGENT, spec.id, spec), (Scope.USER, call.user, None),
                                (Scope.RUN, call.task_id, None), (Scope.DAY, None, None)):
            rules = self.budget_rules(scope, key, own)
            if not rules:
                continue
            spent = await asyncio.to_thread(store.spent, scope, key, day)
            for rule in rules:
                left = rule.usd - spent
                if left < tightest.usd:
                    tightest = Remaining(left, scope, key, spent, rule.usd)
        return tightest

    def estimate(self, model: str, input_tokens: int) -> float:
        """USD a call on ``model`` is expected to cost."""
        price = self.limits.price(model)
        return price.cost(input_tokens, self.limits.expected_output_tokens)

    async def record(self, call: CallContext, spec: Any, model: str, usage: Mapping[str, Any],
                     reserved: int) -> UsageRecord:
        """Record a model call's usage and cost; count its tokens beyond ``reserved``."""
        input_tokens = int(usage.get("input_tokens") or 0)
        output_tokens = int(usage.get("output_tokens") or 0)
        price = self.limits.prices.get(model)
        cost = price.cost(input_tokens, output_tokens) if price is not None else 0.0
        record = UsageRecord(model=model, input_tokens=input_tokens, output_tokens=output_tokens,
                             cost=cost, agent=spec.id, user_id=call.user,
                             thread_id=call.thread_id or None, task_id=call.task_id or None)
        await asyncio.to_thread(self.usage(call.saver).record, record)
        extra = input_tokens + output_tokens - reserved
        if extra > 0:
            for quota in self._token_quotas(call, spec, model):
                await self.limiters.add(quota, extra)
        return record

    def close(self) -> None:
        self.limiters.close()


def guards_for(limits: Limits | None, specs: Iterable[Any] = ()) -> Guards | None:
    """The run-time guards of a graph (None when nothing is limited)."""
    specs = list(specs)
    own = any(getattr(s, "rate_limit", None) or getattr(s, "budget", None) for s in specs)
    if limits is None and not own:
        return None
    if limits is not None and not isinstance(limits, Limits):
        raise LimitsConfigError(f"limits must be accord.guardrails.Limits (or loaded with "
                                f"load_limits), got {type(limits).__name__}")
    return Guards(limits or Limits())


__all__ = ["Guards", "guards_for"]
