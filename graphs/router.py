"""The tiered routing node: deterministic rules, then an LLM classification, then a default.

No free text ever becomes a transition: an LLM's answer is parsed into a model whose target is
a ``Literal`` of the allowed targets, checked again against the transition table, and replaced
by the declared default when confidence is below the threshold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.errors import GraphBubbleUp
from pydantic import BaseModel, Field, ValidationError, create_model

Tier = Literal["finish", "rule", "llm", "default", "handoff", "guardrail"]


@dataclass(frozen=True)
class RouteDecision:
    """Where the router sent a request, and why."""

    tier: Tier
    """Which tier decided: ``rule``, ``llm``, ``default``, ``finish``, ``handoff``, ``guardrail``."""
    target: str
    """The node the run goes to next."""
    reason: str
    """Why (the rule that matched, the model's reason, or why the default applied)."""
    confidence: float | None = None
    """The LLM's confidence, when the LLM tier was consulted."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "target": self.target,
            "reason": self.reason,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class KeywordRule:
    """Routes to ``target`` when the request contains any keyword (whole words, any case)."""

    target: str
    """Node to route to."""
    keywords: tuple[str, ...]
    """Words or phrases that select the target."""
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = "|".join(re.escape(k) for k in self.keywords)
        object.__setattr__(self, "_pattern", re.compile(rf"\b(?:{words})\b", re.IGNORECASE))

    def match(self, text: str, state: Mapping[str, Any]) -> str | None:
        found = self._pattern.search(text)
        return f"keyword {found.group(0).lower()!r}" if found else None


@dataclass(frozen=True)
class PatternRule:
    """Routes to ``target`` when the request matches a regular expression."""

    target: str
    """Node to route to."""
    pattern: str
    """Regular expression searched in the request (case-insensitive)."""

    def match(self, text: str, state: Mapping[str, Any]) -> str | None:
        return f"pattern {self.pattern!r}" if re.search(self.pattern, text, re.I) else None


@dataclass(frozen=True)
class PredicateRule:
    """Routes to ``target`` when a predicate on (request, state) holds."""

    target: str
    """Node to route to."""
    predicate: Callable[[str, Mapping[str, Any]], bool]
    """The test."""
    reason: str = "predicate"
    """Recorded as the decision's reason."""

    def match(self, text: str, state: Mapping[str, Any]) -> str | None:
        return self.reason if self.predicate(text, state) else None


Rule = KeywordRule | PatternRule | PredicateRule


def route_choice_model(targets: Sequence[str]) -> type[BaseModel]:
    """The structured-output model an LLM must fill: its target can only be an allowed one."""
    return create_model(
        "RouteChoice",
        target=(Literal[tuple(targets)], Field(description="the node that should handle it")),
        confidence=(float, Field(ge=0.0, le=1.0, description="0..1, how sure you are")),
        reason=(str, Field(description="one short sentence")),
    )


@dataclass(frozen=True)
class LLMClassifier:
    """Second tier: a chat model classifies the request with structured output."""

    model: str = "small"
    """Model reference or tier name."""
    threshold: float = 0.6
    """Below this confidence the router uses its default."""
    instructions: str = (
        "You route customer requests to the one specialist who should handle them. "
        "Answer with the target, your confidence between 0 and 1, and a short reason."
    )
    """System prompt; the targets and their descriptions are appended."""


@dataclass(frozen=True)
class Router:
    """A tiered router: ``rules`` first, then ``classifier``, then ``default``."""

    default: str
    """Where requests go that no tier can place confidently (for example human triage)."""
    rules: tuple[Rule, ...] = ()
    """Deterministic rules, tried in order; the first match wins and costs no model call."""
    classifier: LLMClassifier | None = None
    """Optional LLM tier."""
    descriptions: Mapping[str, str] = field(default_factory=dict)
    """What each target is for, shown to the LLM tier."""

    def targets(self) -> set[str]:
        return {self.default, *(r.target for r in self.rules)}

    def _by_rule(self, text: str, state: Mapping[str, Any]) -> RouteDecision | None:
        for rule in self.rules:
            reason = rule.match(text, state)
            if reason is not None:
                return RouteDecision("rule", rule.target, reason)
        if self.classifier is None:
            return RouteDecision("default", self.default, "no rule matched")
        return None

    def _prepare(self, text: str, allowed: Sequence[str]) -> tuple[list[str], type[BaseModel], list[Any]]:
        assert self.classifier is not None
        targets = [t for t in allowed if not t.startswith("__")]
        lines = [self.classifier.instructions, "", "Targets:"]
        lines += [f"- {t}: {self.descriptions.get(t, t)}" for t in targets]
        prompt = [SystemMessage("\n".join(lines)), HumanMessage(text)]
        return targets, route_choice_model(targets), prompt

    def decide(
        self,
        text: str,
        state: Mapping[str, Any],
        allowed: Sequence[str],
        model_for: Callable[[str], BaseChatModel],
    ) -> RouteDecision:
        decided = self._by_rule(text, state)
        if decided is not None:
            return decided
        targets, schema, prompt = self._prepare(text, allowed)
        try:
            model = model_for(self.classifier.model)  # type: ignore[union-attr]
            raw = model.with_structured_output(schema).invoke(prompt)
        except GraphBubbleUp:
            raise
        except Exception as exc:  # provider down, bad answer: the declared default decides
            return self._rejected(exc)
        return self._settle(raw, schema, targets)

    async def adecide(
        self,
        text: str,
        state: Mapping[str, Any],
        allowed: Sequence[str],
        model_for: Callable[[str], BaseChatModel],
    ) -> RouteDecision:
        decided = self._by_rule(text, state)
        if decided is not None:
            return decided
        targets, schema, prompt = self._prepare(text, allowed)
        try:
            model = model_for(self.classifier.model)  # type: ignore[union-attr]
            raw = await model.with_structured_output(schema).ainvoke(prompt)
        except GraphBubbleUp:
            raise
        except Exception as exc:  # provider down, bad answer: the declared default decides
            return self._rejected(exc)
        return self._settle(raw, schema, targets)

    def _rejected(self, exc: Exception) -> RouteDecision:
        first = str(exc).splitlines()[0] if str(exc) else ""
        return RouteDecision("default", self.default, f"LLM answer rejected ({type(exc).__name__}): {first}")

    def _settle(self, raw: Any, schema: type[BaseModel], targets: Sequence[str]) -> RouteDecision:
        assert self.classifier is not None
        try:
            choice: Any = schema.model_validate(raw if isinstance(raw, dict) else raw.model_dump())
        except (ValidationError, AttributeError) as exc:
            return self._rejected(exc)
        if choice.target not in targets:  # defence in depth; the Literal already forbids it
            return RouteDecision("default", self.default, f"LLM chose unknown {choice.target!r}")
        if choice.confidence < self.classifier.threshold:
            return RouteDecision(
                "default",
                self.default,
                f"LLM confidence {choice.confidence:.2f} below {self.classifier.threshold:.2f} "
                f"(suggested {choice.target}: {choice.reason})",
                choice.confidence,
            )
        return RouteDecision("llm", choice.target, choice.reason, choice.confidence)
