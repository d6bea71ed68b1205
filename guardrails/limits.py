"""What a graph's rate limits and cost budgets are: prices, rules, where the buckets live.

Configured per graph (``Workflow(limits=Limits(...))`` or ``load_limits("limits.yaml")``) and
per agent (``rate_limit:`` / ``budget:`` in its spec). Bad input is refused with one line that
names the place (``limits.yaml: budgets[0].usd: ...``) as a :class:`LimitsConfigError`.

```yaml
prices:                      # USD per million tokens, by resolved model name
  openai:gpt-4o-mini: {input: 0.15, output: 0.60}
  openai:gpt-4o: {input: 2.50, output: 10.00}
rate_limits:
  - {scope: user, requests_per_second: 2, max_wait: 1}
  - {scope: model, tokens_per_minute: 200000}
budgets:
  - {scope: user, usd: 1.00}  # per end user and UTC day
  - {scope: run, usd: 0.05}   # per request
cache: {ttl: 600, agents: [faq]}   # identical model calls answered again for 10 minutes
backend: redis://127.0.0.1:6379/0   # rate-limit buckets; in-process when unset
```
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accord.errors import AccordError


class LimitsConfigError(AccordError):
    """A limits configuration (YAML or Python) is invalid; the message names the place."""


class Scope(StrEnum):
    """What a rate limit or a budget counts against."""

    AGENT = "agent"
    """One agent (every model call and every call of the agent)."""
    MODEL = "model"
    """One model (by resolved name, every agent that uses it)."""
    USER = "user"
    """One end user (``configurable.user_id``)."""
    RUN = "run"
    """One request (budgets only): what its model calls cost."""
    DAY = "day"
    """The whole graph in one UTC day (budgets only)."""


class Price(BaseModel):
    """A model's price, USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    """USD per million prompt tokens."""
    output: float = Field(ge=0)
    """USD per million completion tokens."""

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for one call's tokens."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


class RateLimitSpec(BaseModel):
    """A rate limit as an agent's spec declares it (the agent is its scope)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_second: float | None = Field(None, gt=0)
    """Calls per second (an agent call; for a model or a user, a model call or a request)."""
    tokens_per_minute: int | None = Field(None, gt=0)
    """Model tokens (prompt and completion) per minute."""
    max_wait: float = Field(1.0, ge=0)
    """Seconds a call waits for room before it is ``RateLimited``."""

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitSpec:
        if self.requests_per_second is None and self.tokens_per_minute is None:
            raise ValueError("a rate limit needs requests_per_second or tokens_per_minute")
        return self


class RateLimitRule(RateLimitSpec):
    """A graph-wide rate limit: on each agent, model or user (or the one ``key`` names)."""

    scope: Scope
    """What it counts against (``agent``, ``model`` or ``user``)."""
    key: str | None = None
    """Only this agent id, model name or user id (None: each one separately)."""

    @model_validator(mode="after")
    def _rate_scope(self) -> RateLimitRule:
        if self.scope in (Scope.RUN, Scope.DAY):
            raise ValueError(f"rate limits count per agent, model or user, not per {self.scope}")
        return self


class BudgetSpec(BaseModel):
    """A cost budget as an agent's spec declares it: what the agent may spend per UTC day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd: float = Field(gt=0)
    """USD the scope may spend."""


class BudgetRule(BudgetSpec):
    """A graph-wide budget: per agent, end user (each per UTC day), request, or the day."""

    scope: Scope
    """What it counts against."""
    key: str | None = None
    """Only this agent id or user id (None: each one separately)."""

    @model_validator(mode="after")
    def _budget_scope(self) -> BudgetRule:
        if self.scope is Scope.MODEL:
            raise ValueError("budgets count per agent, user, run or day, not per model")
        return self


class CacheRule(BaseModel):
    """The request cache: which LLM agents' model calls are answered again, and for how long
    (see :mod:`accord.guardrails.cache`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl: float = Field(gt=0)
    """Seconds a stored answer stays valid."""
    agents: tuple[str, ...] | None = None
    """Only these agent ids (None: every LLM agent of the graph)."""

    def covers(self, agent: str) -> bool:
        """Whether ``agent``'s model calls are cached."""
        return self.agents is None or agent in self.agents


class Limits(BaseModel):
    """A graph's rate limits and budgets, the model prices budgets need, the buckets' home."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prices: dict[str, Price] = Field(default_factory=dict)
    """Resolved model name -> price (every model an agent may use, when there are budgets)."""
    rate_limits: tuple[RateLimitRule, ...] = ()
    """Rate limits on agents, models and end users."""
    budgets: tuple[BudgetRule, ...] = ()
    """Cost budgets on agents, end users, requests and the day."""
    backend: str | None = None
    """Where rate-limit buckets live: ``redis://…``, ``postgresql://…``, ``sqlite:///…``
    (shared by every process on it), or in this process when None / ``memory://``."""
    tiers: tuple[str, ...] = ("large", "small")
    """Model tiers from the largest to the smallest: a budget that cannot pay for an agent's
    tier tries the smaller ones."""
    cache: CacheRule | None = None
    """The request cache (None: model calls are never answered from a cache)."""
    expected_output_tokens: int = Field(256, ge=0)
    """Completion tokens a call is expected to produce, for estimates made before it."""
    source: str = Field("limits", exclude=True)
    """Where the configuration came from (named in errors)."""

    @model_validator(mode="after")
    def _backend(self) -> Limits:
        if self.backend and not self.backend.startswith(
                ("memory://", "redis://", "rediss://", "postgresql://", "postgres://",
                 "sqlite://")):
            raise ValueError(f"backend {self.backend!r} is not memory://, redis://, "
                             "postgresql:// or sqlite:///")
        return self

    def price(self, model: str, *, where: str = "") -> Price:
        """The price of ``model``; :class:`LimitsConfigError` naming the place when missing."""
        found = self.prices.get(model)
        if found is None:
            at = f" ({where})" if where else ""
            known = ", ".join(sorted(self.prices)) or "none"
            raise LimitsConfigError(f"{self.source}: prices: no price for model {model!r}{at}; "
                                    f"priced: {known}")
        return found

    @property
    def empty(self) -> bool:
        return not self.rate_limits and not self.budgets


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    what = err.get("msg", "").removeprefix("Value error, ")
    return f"{where}: {what}" if where else what


def limits_from(data: Any, *, source: str = "limits") -> Limits:
    """:class:`Limits` from plain data (a YAML document); errors name ``source`` and the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LimitsConfigError(f"{source}: expected a mapping with prices, rate_limits, "
                                f"budgets, backend; got {type(data).__name__}")
    try:
        return Limits.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise LimitsConfigError(f"{source}: {_first_error(exc)}") from None


def load_limits(path: str | Path) -> Limits:
    """:class:`Limits` from a YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LimitsConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    return limits_from(data, source=str(path))


__all__ = [
    "BudgetRule",
    "BudgetSpec",
    "Limits",
    "LimitsConfigError",
    "Price",
    "RateLimitRule",
    "RateLimitSpec",
    "Scope",
    "limits_from",
    "load_limits",
]
