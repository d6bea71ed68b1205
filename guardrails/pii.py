"""``RedactPII``: replaces personal data and secrets in a request with placeholders.

The engine runs it on every message of a new request before any model sees the text and before
anything is checkpointed: ``jane@example.com`` becomes ``<EMAIL_1>``. The real values go to the
thread's vault (``accord.guardrails.vault``), outside the checkpoint, so a tool that needs one can
resolve its placeholder. The same value keeps its placeholder for the whole thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from accord.guardrails.base import GuardrailConfigError, GuardrailResult
from accord.guardrails.pii_detectors import DETECTORS, find_all

PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")
"""What a placeholder looks like: ``<EMAIL_1>``, ``<CARD_2>``."""


@dataclass(frozen=True)
class Redaction:
    """A text with its personal data replaced by placeholders."""

    text: str
    """The redacted text."""
    new: Mapping[str, str] = field(default_factory=dict)
    """Placeholders this text introduced, with their real values (for the vault only)."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """How many values of each kind were replaced."""


@dataclass(frozen=True)
class RedactPII:
    """Finds email, phone, payment card, IBAN, national ids and secrets; redacts them."""

    kinds: tuple[str, ...] = tuple(DETECTORS)
    """The kinds to redact (``accord.guardrails.pii_detectors.DETECTORS``), in priority order."""
    name: str = "pii"
    """Name recorded in results."""
    refuses: ClassVar[bool] = False
    """Never a refusal: the engine redacts the request and lets it go on."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(DETECTORS))
        if unknown:
            raise GuardrailConfigError(
                f"RedactPII: unknown kind(s) {', '.join(unknown)}; known: {', '.join(DETECTORS)}")

    def redact(self, text: str, known: Mapping[str, str] | None = None) -> Redaction:
        """``text`` with every match replaced; ``known`` maps the thread's placeholders to their
        values (a known value keeps its placeholder, a new one gets the next number)."""
        matches = find_all(text, self.kinds)
        if not matches:
            return Redaction(text)
        by_value = {value: ph for ph, value in (known or {}).items()}
        taken = dict(known or {})
        new: dict[str, str] = {}
        counts: dict[str, int] = {}
        parts, pos = [], 0
        for m in matches:
            value = m["value"]
            placeholder = by_value.get(value)
            if placeholder is None:
                label = m["type"].upper()
                number = 1 + sum(1 for ph in taken if ph.startswith(f"<{label}_"))
                placeholder = f"<{label}_{number}>"
                taken[placeholder] = value
                by_value[value] = placeholder
                new[placeholder] = value
            counts[m["type"]] = counts.get(m["type"], 0) + 1
            parts += [text[pos:m["start"]], placeholder]
            pos = m["end"]
        parts.append(text[pos:])
        return Redaction("".join(parts), new, counts)

    def check(self, text: str) -> GuardrailResult:
        """What would be redacted (never a refusal: redaction lets the request go on)."""
        counts = self.redact(text).counts
        return GuardrailResult(self.name, False, "", {"redacted": dict(counts)} if counts else {})


__all__ = ["PLACEHOLDER", "RedactPII", "Redaction"]
