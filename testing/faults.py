"""`ProviderFault`: what a failing model provider does to one request, scripted.

Put a fault in an `OpenAICompatServer` script where a reply would go; the server acts it out
on the wire, so the real OpenAI client meets it as it would meet a real provider:

```python
script = [ProviderFault.status(429, retry_after=0.2), ProviderFault.hang(), "Hello!"]
with OpenAICompatServer(script) as server:
    ...  # the first request is refused, the second never answered, the third answered
```
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["FaultKind", "ProviderFault"]


class FaultKind(StrEnum):
    """How the server fails one request."""

    STATUS = "status"
    """An HTTP error answer (429 with ``Retry-After``, 500, 503, ...)."""
    SLOW = "slow"
    """The reply, after a delay."""
    HANG = "hang"
    """No answer at all until the server stops."""
    DROP = "drop"
    """The connection is closed without an answer."""
    MALFORMED = "malformed"
    """HTTP 200 with a body that is not JSON (streamed: an event whose data is not JSON)."""
    TRUNCATED = "truncated"
    """The reply starts (stream chunks or part of the body) and the connection closes."""


@dataclass(frozen=True)
class ProviderFault:
    """One scripted provider failure (build it with the class methods)."""

    kind: FaultKind
    """What the server does."""
    status_code: int = 500
    """The HTTP status of a ``STATUS`` fault."""
    retry_after: float | None = None
    """Seconds sent in ``Retry-After`` (``STATUS`` faults)."""
    delay: float = 0.0
    """Seconds before a ``SLOW`` reply."""
    reply: Any = None
    """What a ``SLOW`` or ``TRUNCATED`` fault answers (the start of it, when truncated)."""

    @classmethod
    def status(cls, code: int, *, retry_after: float | None = None) -> ProviderFault:
        """An HTTP error answer, optionally with ``Retry-After: seconds``."""
        return cls(FaultKind.STATUS, status_code=code, retry_after=retry_after)

    @classmethod
    def slow(cls, seconds: float, reply: Any) -> ProviderFault:
        """``reply``, after ``seconds``."""
        return cls(FaultKind.SLOW, delay=seconds, reply=reply)

    @classmethod
    def hang(cls) -> ProviderFault:
        """Accept the request and never answer it (until the server stops)."""
        return cls(FaultKind.HANG)

    @classmethod
    def drop(cls) -> ProviderFault:
        """Close the connection without answering."""
        return cls(FaultKind.DROP)

    @classmethod
    def malformed(cls) -> ProviderFault:
        """HTTP 200 whose body is not JSON."""
        return cls(FaultKind.MALFORMED)

    @classmethod
    def truncated(cls, reply: Any = "this answer is cut off half way") -> ProviderFault:
        """Start answering ``reply`` and close the connection before the end."""
        return cls(FaultKind.TRUNCATED, reply=reply)
