"""accord.resilience: what happens when a call fails.

- `is_transient`, `retry_after`: which failures deserve another attempt, and how long the
  provider asked to wait.
- `ProviderRetryMiddleware`: langchain's `ModelRetryMiddleware` that also honours `Retry-After`.
"""

from accord.resilience.retry import ProviderRetryMiddleware
from accord.resilience.transient import MAX_RETRY_AFTER, is_transient, retry_after

__all__ = ["MAX_RETRY_AFTER", "ProviderRetryMiddleware", "is_transient", "retry_after"]
