"""accord.guardrails: what guards an agent call.

- ``MaxInputLength``: refuses oversize requests;
- ``PromptInjection``, ``OffTopic``: refuse injections and requests the graph is not for;
- ``RedactPII``: replaces personal data and secrets with placeholders (``<EMAIL_1>``) before
  any model sees the request or it is checkpointed; the values go to the thread's vault
  (``reveal`` / ``conceal`` for tools).
"""

from accord.guardrails.base import (
    GuardrailConfigError,
    GuardrailResult,
    GuardrailTripwireTriggered,
    InputGuardrail,
    MaxInputLength,
    run_input_guardrails,
)
from accord.guardrails.injection import PromptInjection
from accord.guardrails.pii import Redaction, RedactPII
from accord.guardrails.topic import OffTopic
from accord.guardrails.vault import conceal, reveal

__all__ = [
    "GuardrailConfigError",
    "GuardrailResult",
    "GuardrailTripwireTriggered",
    "InputGuardrail",
    "MaxInputLength",
    "OffTopic",
    "PromptInjection",
    "RedactPII",
    "Redaction",
    "conceal",
    "reveal",
    "run_input_guardrails",
]
