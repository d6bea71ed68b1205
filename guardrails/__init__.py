"""accord.guardrails: what guards an agent call.

- ``MaxInputLength``: refuses oversize requests;
- ``PromptInjection``, ``OffTopic``: refuse injections and requests the graph is not for;
- ``RedactPII``: replaces personal data and secrets with placeholders (``<EMAIL_1>``) before
  any model sees the request or it is checkpointed; the values go to the thread's vault
  (``reveal`` / ``conceal`` for tools);
- permissions: declared tools and context keys only, ``visible_to`` for whose data a tool
  shows (``PermissionDenied``, ``DataNotVisible``);
- ``Limits``: rate limits per agent, model and end user (``RateLimited``) and cost budgets per
  agent, user, request and day (``BudgetExhausted``), usage in ``accord_usage``, and the
  request cache (``CacheRule``: repeated model calls answered from ``accord_cache``).
"""

from accord.guardrails.base import (
    GuardrailConfigError,
    GuardrailResult,
    GuardrailTripwireTriggered,
    GuardStop,
    InputGuardrail,
    MaxInputLength,
    run_input_guardrails,
)
from accord.guardrails.budget import BudgetDecision, BudgetExhausted, Choice, decide
from accord.guardrails.cache import ModelCallCache, cache_for
from accord.guardrails.call import current_user, end_user
from accord.guardrails.injection import PromptInjection
from accord.guardrails.limits import (
    BudgetRule,
    BudgetSpec,
    CacheRule,
    Limits,
    LimitsConfigError,
    Price,
    RateLimitRule,
    RateLimitSpec,
    Scope,
    limits_from,
    load_limits,
)
from accord.guardrails.permissions import DataNotVisible, PermissionDenied, visible_to
from accord.guardrails.pii import Redaction, RedactPII
from accord.guardrails.rate_limit import RateLimited
from accord.guardrails.topic import OffTopic
from accord.guardrails.usage import UsageRecord, UsageRow, usage_for
from accord.guardrails.vault import conceal, reveal

__all__ = [
    "BudgetDecision",
    "BudgetExhausted",
    "BudgetRule",
    "BudgetSpec",
    "CacheRule",
    "Choice",
    "DataNotVisible",
    "GuardStop",
    "Limits",
    "LimitsConfigError",
    "ModelCallCache",
    "PermissionDenied",
    "Price",
    "RateLimitRule",
    "RateLimitSpec",
    "RateLimited",
    "Scope",
    "UsageRecord",
    "UsageRow",
    "current_user",
    "decide",
    "end_user",
    "limits_from",
    "load_limits",
    "cache_for",
    "usage_for",
    "visible_to",
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
