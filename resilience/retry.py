"""`ProviderRetryMiddleware`: langchain's `ModelRetryMiddleware`, honouring `Retry-After`.

accord's model calls have one retry layer: the OpenAI client's own retries are off
(`max_retries=0`, see `accord.agents.models`) and this middleware retries transient failures
with exponential backoff and jitter. When a failed attempt carried `Retry-After`, the next
attempt starts no sooner than that. Each attempt is bounded by ``timeout`` (a model that does
not answer in time failed transiently) and written to the hop's attempt log
(`accord.resilience.attempts`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import ModelRetryMiddleware

from accord.observability.steps import model_attempt
from accord.resilience.attempts import current_attempts
from accord.resilience.transient import retry_after


class ProviderRetryMiddleware(ModelRetryMiddleware):
    """Retries a model call on transient errors; waits at least what ``Retry-After`` asked;
    bounds each attempt by ``timeout`` seconds (None: no bound of its own)."""

    def __init__(self, *, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        """Seconds one model call may take, each attempt on its own."""

    async def awrap_model_call(
        self, request: Any, handler: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        wait: list[float] = []
        number = 0
        log = current_attempts()

        async def attempt(req: Any) -> Any:
            nonlocal number
            number += 1
            model_attempt(number)
            if wait:
                await asyncio.sleep(wait.pop())
            bound = asyncio.timeout(self.timeout)
            try:
                async with bound:
                    answer = await handler(req)
            except Exception as exc:
                if isinstance(exc, TimeoutError) and bound.expired():
                    cut = TimeoutError(f"the model gave no answer within {self.timeout:g}s")
                    self._failed(log, number, cut, wait)
                    raise cut from None
                if (seconds := retry_after(exc)) and self.retry_on_matches(exc):
                    wait.append(seconds)
                self._failed(log, number, exc, wait)
                raise
            if log is not None:
                log.ok(number)
            return answer

        return await super().awrap_model_call(request, attempt)

    def _failed(self, log: Any, number: int, exc: Exception, wait: list[float]) -> None:
        if log is not None:
            retried = self.retry_on_matches(exc) and number <= self.max_retries
            log.failed(number, exc, retried=retried, wait=wait[-1] if wait and retried else None)

    def retry_on_matches(self, exc: Exception) -> bool:
        """Whether ``exc`` is one this middleware retries."""
        retry_on = self.retry_on
        return retry_on(exc) if callable(retry_on) else isinstance(exc, retry_on)


__all__ = ["ProviderRetryMiddleware"]
