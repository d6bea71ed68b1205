"""Guardrails return data: a frozen result with a tripwire, never prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from accord.errors import AccordError


@dataclass(frozen=True)
class GuardrailResult:
    """The verdict of one guardrail on one input or output."""

    guardrail: str
    """Name of the guardrail that produced the result."""
    tripwire_triggered: bool
    """True when the input must not go further."""
    reason: str = ""
    """Why the tripwire fired (empty when it did not)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra data for the audit trail."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "guardrail": self.guardrail,
            "tripwire_triggered": self.tripwire_triggered,
            "reason": self.reason,
            "details": dict(self.details),
        }


class GuardrailTripwireTriggered(AccordError):
    """Raised where a tripped guardrail must stop the caller; carries the result."""

    def __init__(self, result: GuardrailResult) -> None:
        super().__init__(f"guardrail {result.guardrail} tripped: {result.reason}")
        self.result = result


class GuardStop(AccordError):
    """A guard refused a call (a permission, a rate limit, a budget): recorded, not applied."""

    audit_kind: Any = None
    """The ``AuditKind`` the refusal is recorded as."""

    def as_dict(self) -> dict[str, Any]:
        return {"reason": str(self)}


class GuardrailConfigError(AccordError):
    """A guardrail was configured with a value it cannot use."""


class InputGuardrail(Protocol):
    """Checks a request before it is routed."""

    name: str

    def check(self, text: str) -> GuardrailResult: ...


@dataclass(frozen=True)
class MaxInputLength:
    """Rejects requests longer than ``max_chars`` characters."""

    max_chars: int = 8000
    """Largest accepted request, in characters."""
    name: str = "max_input_length"
    """Name recorded in results."""

    def check(self, text: str) -> GuardrailResult:
        if len(text) > self.max_chars:
            return GuardrailResult(
                self.name,
                True,
                f"message is {len(text)} characters; the limit is {self.max_chars}",
                {"length": len(text), "limit": self.max_chars},
            )
        return GuardrailResult(self.name, False)


def run_input_guardrails(guards: tuple[InputGuardrail, ...], text: str) -> GuardrailResult | None:
    """The first tripped result, or ``None`` when every guard passes."""
    for guard in guards:
        if getattr(guard, "refuses", True) is False:
            continue  # a redacting guard: the engine applies it after the checks
        result = guard.check(text)
        if result.tripwire_triggered:
            return result
    return None
