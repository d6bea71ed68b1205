"""accord.guardrails: what guards an agent call."""

from accord.guardrails.base import (
    GuardrailResult,
    GuardrailTripwireTriggered,
    InputGuardrail,
    MaxInputLength,
    run_input_guardrails,
)

__all__ = [
    "GuardrailResult",
    "GuardrailTripwireTriggered",
    "InputGuardrail",
    "MaxInputLength",
    "run_input_guardrails",
]
