"""``OffTopic``: refuses requests about something the graph is not for.

Deterministic: a request trips when it asks for one of the blocked tasks (creative writing,
homework, code, medical, legal or investment advice, politics...) and mentions none of the
graph's own subjects. The support example passes its routing keywords as the subjects, so
"write a poem about my refund" still reaches billing.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from accord.guardrails.base import GuardrailResult

BLOCKED: dict[str, str] = {
    "creative_writing": r"\b(?:write|compose|generate)\s+(?:me\s+)?(?:a|an|some)\s+(?:\w+\s+)?"
                        r"(?:poem|song|story|haiku|essay|limerick|novel|joke|rap|screenplay)s?\b",
    "homework": r"\b(?:solve|do)\s+(?:my|this)\s+(?:homework|assignment|exam|equation)"
                r"|\bhomework\b|\bintegral of\b|\bderivative of\b",
    "code": r"\b(?:write|generate|give me)\s+(?:me\s+)?(?:a|an|some|the)?\s*(?:python|javascript|java|sql|c\+\+|rust|go|bash)"
            r"\s+(?:code|script|function|program)\b",
    "medical": r"\b(?:diagnos\w*|symptoms?\s+of|dosage|prescri\w+|should i take)\b",
    "legal_advice": r"\b(?:legal advice|sue (?:my|the)|divorce|custody|immigration status)\b",
    "investment": r"\b(?:stock tips?|which stocks?|should i (?:buy|sell|invest)|crypto(?:currency)? "
                  r"(?:to buy|tips)|bitcoin price|forex)\b",
    "politics": r"\b(?:who should i vote|election|president|political party|democrats?|republicans?)\b",
    "recipes": r"\b(?:recipe|how (?:do i|to) (?:cook|bake)|ingredients for)\b",
    "trivia": r"\b(?:capital of|tallest mountain|who won the (?:world cup|super bowl)|meaning of life)\b",
}
"""The named off-topic tasks (regular expressions on the lower-cased text)."""


@dataclass(frozen=True)
class OffTopic:
    """Refuses a request for a blocked task unless it mentions one of ``subjects``."""

    subjects: tuple[str, ...] = ()
    """Words of the graph's own subject (e.g. 'invoice', 'refund'); any of them lets a request
    through."""
    blocked: tuple[str, ...] = tuple(BLOCKED)
    """Which of :data:`BLOCKED` to refuse."""
    name: str = "off_topic"
    """Name recorded in results."""

    @functools.cached_property
    def _subjects(self) -> re.Pattern[str] | None:
        if not self.subjects:
            return None
        return re.compile(r"\b(?:" + "|".join(re.escape(s.lower()) for s in self.subjects) + r")\b")

    def check(self, text: str) -> GuardrailResult:
        lowered = text.lower()
        if self._subjects is not None and self._subjects.search(lowered):
            return GuardrailResult(self.name, False)
        for key in self.blocked:
            if re.search(BLOCKED[key], lowered):
                return GuardrailResult(self.name, True,
                                       f"the request is off topic ({key.replace('_', ' ')})",
                                       {"topic": key})
        return GuardrailResult(self.name, False)


__all__ = ["BLOCKED", "OffTopic"]
