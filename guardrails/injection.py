"""``PromptInjection``: refuses requests that try to override the agents' instructions.

Deterministic: a request trips when it matches one of the known shapes of an injection
(override or reveal the instructions, switch role, jailbreak personas, fake system or tool
turns). Matching runs on a normalised text (case, spacing and zero-width characters folded),
so ``I g n o r e`` tricks and invisible characters do not hide the pattern.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from accord.guardrails.base import GuardrailResult

_ANY = r"(?:\w+\s+){0,4}?"
PATTERNS: dict[str, str] = {
    "override": (
        rf"\b(?:ignore|disregard|forget|override|bypass|skip|drop)\s+{_ANY}"
        r"(?:previous|prior|above|earlier|preceding|all|any|your|the|system|initial|original)\s+"
        rf"{_ANY}(?:instructions?|prompts?|rules|directives|guidelines|guidance|guardrails|programming)"),
    "told_before": (r"\b(?:set\s+aside|forget|ignore|disregard|drop)\s+(?:everything|all|anything|what)\s+"
                    r"(?:you\s+(?:were|have\s+been|'ve\s+been)\s+(?:told|given)|(?:written\s+)?above)"),
    "new_instructions": (r"\b(?:new|updated|real|actual)\s+(?:system\s+)?(?:instructions?|rules?|policy)"
                         r"\s*[:\-]"),
    "echo_above": (r"\b(?:output|repeat|print|copy|return)\s+(?:the\s+|all\s+)?(?:text|words|content|"
                   r"everything)\s+(?:above|before this|preceding)"),
    "reveal_prompt": (
        rf"\b(?:reveal|show|print|repeat|output|tell|display|dump|leak|give)\s+{_ANY}"
        r"(?:system|hidden|initial|original|secret|developer)\s+(?:prompt|instructions?|message|rules)"),
    "prompt_question": r"\bwhat\s+(?:is|are|were)\s+your\s+(?:system\s+)?(?:prompt|instructions)\b",
    "role_switch": (
        r"\b(?:you\s+are\s+now|from\s+now\s+on\s+you\s+are|act\s+as|pretend\s+(?:to\s+be|you\s+are)"
        r"|roleplay\s+as|(?:respond|answer|reply)\s+(?:only\s+)?as)\s+(?:an?\s+|the\s+)?(?:unrestricted|unfiltered|evil|jailbroken|dan\b|developer\s+mode"
        r"|different\s+ai|ai\s+without|assistant\s+with\s+no|admin|root|system|developer)"),
    "jailbreak": (r"\b(?:dan\s+mode|(?:enable|activate|enter|switch\s+to|turn\s+on)\s+(?:the\s+)?"
                  r"developer\s+mode|jailbreak|do\s+anything\s+now"
                  r"|no\s+(?:restrictions|filters|rules|limits)\s+(?:apply|mode))\b"),
    "fake_turn": (r"(?:^|\n)\s*(?:###\s*)?(?:system|assistant|developer)\s*(?:prompt|message|override)?"
                  r"\s*:\s*(?:you\b|ignore|new\b|from now|the user|always|never|disregard)"
                  r"|<\|?(?:im_start|system|endoftext)\|?>|\[/?(?:inst|system)\]"),
    "exfiltrate": (r"\b(?:send|post|forward|email|upload)\s+(?:all\s+|every\s+)?(?:the\s+)?"
                   r"(?:conversation|chat history|customer data|database|all\s+(?:customers|invoices|users))"
                   r"\s+to\b"),
    "tool_abuse": (r"\b(?:call|run|execute|invoke)\s+(?:the\s+)?(?:tool\s+)?\w*(?:refund|reset|delete)\w*"
                   r"(?:\s+tool)?\s+(?:for\s+|on\s+)?(?:every|all|each)\b"),
}
"""The named shapes of an injection (regular expressions on the normalised text)."""

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_SPACED = re.compile(r"\b(?:\w ){3,}\w\b")


def normalise(text: str) -> str:
    """Lower case, NFKC, zero-width characters dropped, ``i g n o r e`` joined up."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).lower()
    return _SPACED.sub(lambda m: m.group(0).replace(" ", ""), text)


@dataclass(frozen=True)
class PromptInjection:
    """Refuses a request shaped like a prompt injection."""

    patterns: tuple[str, ...] = tuple(PATTERNS)
    """Which of :data:`PATTERNS` to apply."""
    name: str = "prompt_injection"
    """Name recorded in results."""

    def check(self, text: str) -> GuardrailResult:
        folded = normalise(text)
        for key in self.patterns:
            if re.search(PATTERNS[key], folded, re.MULTILINE):
                return GuardrailResult(self.name, True,
                                       f"the request looks like a prompt injection ({key})",
                                       {"pattern": key})
        return GuardrailResult(self.name, False)


__all__ = ["PATTERNS", "PromptInjection", "normalise"]
