"""accord.resilience: what happens when a call fails.

- `is_transient`, `retry_after`: which failures deserve another attempt, and how long the
  provider asked to wait.
- `ProviderRetryMiddleware`: langchain's `ModelRetryMiddleware` that also honours `Retry-After`.
- `BreakerSpec`, `BreakerState`, `BreakerOpen`, `breakers_for`: circuit breakers per agent and
  per model provider, shared through the saver's database (`accord.resilience.gate` puts them
  in front of an agent call).
"""

from accord.resilience.breaker import (
    Breaker,
    BreakerOpen,
    BreakerSpec,
    BreakerState,
    BreakerStore,
    MemoryBreakers,
)
from accord.resilience.breaker_sql import BreakerTableCorrupt, SqlBreakers, breakers_for
from accord.resilience.retry import ProviderRetryMiddleware
from accord.resilience.transient import MAX_RETRY_AFTER, is_transient, retry_after

__all__ = [
    "MAX_RETRY_AFTER",
    "Breaker",
    "BreakerOpen",
    "BreakerSpec",
    "BreakerState",
    "BreakerStore",
    "BreakerTableCorrupt",
    "MemoryBreakers",
    "ProviderRetryMiddleware",
    "SqlBreakers",
    "breakers_for",
    "is_transient",
    "retry_after",
]
