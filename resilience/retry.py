"""`ProviderRetryMiddleware`: langchain's `ModelRetryMiddleware`, honouring `Retry-After`.

accord's model calls have one retry layer: the OpenAI client's own retries are off
(`max_retries=0`, see `accord.agents.models`) and this middleware retries transient failures
with exponential backoff and jitter. When a failed attempt carried `Retry-After`, the next
attempt starts no sooner than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import ModelRetryMiddleware

from accord.observability.steps import model_attempt
from accord.resilience.transient import retry_after


class ProviderRetryMiddleware(ModelRetryMiddleware):
    """Retries a model call on transient errors; waits at least what ``Retry-After`` asked."""

    async def awrap_model_call(
        self, request: Any, handler: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        wait: list[float] = []
        attempts = [0]

        async def attempt(req: Any) -> Any:
            attempts[0] += 1
            model_attempt(attempts[0])
            if wait:
                await asyncio.sleep(wait.pop())
            try:
                return await handler(req)
            except Exception as exc:
                if (seconds := retry_after(exc)) and self.retry_on_matches(exc):
                    wait.append(seconds)
                raise

        return await super().awrap_model_call(request, attempt)

    def retry_on_matches(self, exc: Exception) -> bool:
        """Whether ``exc`` is one this middleware retries."""
        retry_on = self.retry_on
        return retry_on(exc) if callable(retry_on) else isinstance(exc, retry_on)


__all__ = ["ProviderRetryMiddleware"]
