"""Which failures of a model call deserve another attempt, and how long to wait before it.

Transient: a timeout, a dropped or reset connection, a truncated answer, HTTP 429, a 5xx, a
provider answer that is not JSON. Not transient: every other 4xx (the same request is refused
the same way) and validation errors of what accord itself checks. langchain-core classifies
provider errors (`ModelError.is_retryable`, set by langchain-openai's error types); accord
reads that first and the HTTP status where there is one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from langchain_core.exceptions import ModelError

MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` honoured, in seconds (a provider asking for more is not waited for)."""

_TRANSPORT_ERRORS = frozenset({
    "APIConnectionError", "APITimeoutError", "ConnectTimeout", "ReadTimeout", "ReadError",
    "RemoteProtocolError", "WriteError",
})
"""Transport failures of the OpenAI SDK and httpx, by class name (neither is imported here)."""


_EMPTY_STREAM = "No generations found in stream"
"""How langchain-core reports a streamed answer with no chunk in it (a provider fault)."""


def _status(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None) or getattr(
        getattr(error, "response", None), "status_code", None)
    # an error status only: a body that fails to parse carries its 200 response along
    return status if isinstance(status, int) and status >= 400 else None


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed: timeout, dropped connection, 429, 5xx, a non-JSON
    answer. Other 4xx answers and validation errors fail the same way again."""
    status = _status(error)
    if status is not None:
        return status == 429 or status >= 500
    if isinstance(error, ModelError):
        return error.is_retryable
    if isinstance(error, TimeoutError | ConnectionError | json.JSONDecodeError):
        return True
    if isinstance(error, ValueError) and str(error).startswith(_EMPTY_STREAM):
        return True  # langchain-core's word for a stream that ended before its first chunk
    return any(cls.__name__ in _TRANSPORT_ERRORS for cls in type(error).__mro__)


_TIMEOUTS = frozenset({"APITimeoutError", "ConnectTimeout", "ReadTimeout", "WriteTimeout",
                       "PoolTimeout", "TimeoutException"})
"""Timeouts of the OpenAI SDK and httpx, by class name."""


def is_timeout(error: BaseException) -> bool:
    """Whether ``error`` says a call took longer than its bound."""
    return isinstance(error, TimeoutError) or any(
        cls.__name__ in _TIMEOUTS for cls in type(error).__mro__)


def retry_after(error: BaseException, *, now: datetime | None = None) -> float | None:
    """Seconds the provider asked to wait (``Retry-After`` / ``retry-after-ms``), capped at
    :data:`MAX_RETRY_AFTER`; None when it did not say."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    if not headers:
        return None
    seconds: float | None = None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            seconds = float(ms) / 1000
        except ValueError:
            seconds = None
    if seconds is None and (value := headers.get("retry-after")) is not None:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds is None:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
