"""accord.resilience: what happens when a call fails.

- `is_transient`, `retry_after`: which failures deserve another attempt, and how long the
  provider asked to wait.
- `ProviderRetryMiddleware`: langchain's `ModelRetryMiddleware` that also honours `Retry-After`.
- `FallbackHop`, `Hop`, `HopCause`, `HopKind`, `Exhaustion`, `task_exhausted`: fallback chains
  (`accord.resilience.fallback`); `EscalationRequest`, `EscalationAnswer`: their human hop.
- `Attempt`, `attempts`: every call an agent or its model made, recorded per hop.
- `BreakerSpec`, `BreakerState`, `BreakerOpen`, `breakers_for`: circuit breakers per agent and
  per model provider, shared through the saver's database (`accord.resilience.gate` puts them
  in front of an agent call).
- `HandoffEnvelope` and its errors (`HandoffExpired`, `HandoffCorrupt`, `HandoffInvalid`,
  `UnknownHandoffVersion`, all `HandoffRejected`): the versioned handoff an agent receives.
- `accord.resilience.deadletters`: dead letters (`dead_letter_event` for a node that gives a
  task up; `letters`, `get`, `retry`, `discard`).
"""

from accord.resilience.attempts import Attempt, AttemptLog, attempts
from accord.resilience.breaker import (
    Breaker,
    BreakerOpen,
    BreakerSpec,
    BreakerState,
    BreakerStore,
    MemoryBreakers,
)
from accord.resilience.breaker_sql import BreakerTableCorrupt, SqlBreakers, breakers_for
from accord.resilience.deadletters import (
    DeadLetter,
    DeadLetterNotFound,
    LetterNotDead,
    LetterReason,
    LetterStatus,
    dead_letter_event,
)
from accord.resilience.envelope import (
    SCHEMA_VERSION,
    HandoffCorrupt,
    HandoffEnvelope,
    HandoffExpired,
    HandoffInvalid,
    HandoffRejected,
    UnknownHandoffVersion,
)
from accord.resilience.escalation import (
    EscalationAnswer,
    EscalationRequest,
    InvalidAnswer,
    parse_answer,
)
from accord.resilience.fallback import (
    Exhaustion,
    FallbackHop,
    Hop,
    HopCause,
    HopKind,
    task_exhausted,
)
from accord.resilience.retry import ProviderRetryMiddleware
from accord.resilience.transient import MAX_RETRY_AFTER, is_transient, retry_after

__all__ = [
    "MAX_RETRY_AFTER",
    "Attempt",
    "AttemptLog",
    "EscalationAnswer",
    "EscalationRequest",
    "Exhaustion",
    "FallbackHop",
    "Hop",
    "HopCause",
    "HopKind",
    "InvalidAnswer",
    "attempts",
    "parse_answer",
    "task_exhausted",
    "SCHEMA_VERSION",
    "DeadLetter",
    "DeadLetterNotFound",
    "HandoffCorrupt",
    "HandoffEnvelope",
    "HandoffExpired",
    "HandoffInvalid",
    "HandoffRejected",
    "LetterNotDead",
    "LetterReason",
    "LetterStatus",
    "UnknownHandoffVersion",
    "dead_letter_event",
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
