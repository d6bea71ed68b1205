"""The tiered router and its node: deterministic rules, then an LLM classification, then a default.

No free text ever becomes a transition: an LLM's answer is parsed into a model whose target is
a ``Literal`` of the allowed targets, checked again against the transition table, and replaced
by the declared default when confidence is below the threshold. The LLM tier has a timeout
(``LLMClassifier.timeout``, 30 s by default) and retries transient failures; whatever still
fails, the declared default decides, and the decision records why.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END
from langgraph.types import Command, Overwrite
from pydantic import BaseModel, Field, ValidationError, create_model

from accord.graphs.state import (
    HOPS_RESET,
    expired_context,
    latest_request,
    retired_tasks,
)
from accord.graphs.transitions import Step, Transitions
from accord.observability.steps import routed
from accord.records import AuditKind, TaskStatus, audit_event, utcnow
from accord.resilience import is_transient, retry_after
from accord.resilience.attempts import describe_error

Tier = Literal["finish", "rule", "llm", "default", "handoff"]


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
    attempts: int = 0
    """Calls made to the LLM tier for this decision (retries included)."""
    failures: tuple[dict[str, Any], ...] = ()
    """The LLM tier's failed calls (attempt, error, transient, retried), in order."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tier": self.tier,
            "target": self.target,
            "reason": self.reason,
            "confidence": self.confidence,
        }
        if self.attempts:
            out["attempts"] = self.attempts
        return out


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
    timeout: float = 30.0
    """Seconds one classification may take; a provider that hangs does not stall the run."""
    max_attempts: int = 2
    """Calls in total when a call fails transiently (timeout, 429, 5xx, dropped connection);
    a 429's ``Retry-After`` is waited for before the next call."""
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
    _prepared: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

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

    def _prepare(self, allowed: Sequence[str]) -> tuple[list[str], type[BaseModel], SystemMessage]:
        """The targets, their choice model and the system prompt (built once per target set)."""
        assert self.classifier is not None
        key = tuple(allowed)
        if key not in self._prepared:
            targets = [t for t in allowed if not t.startswith("__")]
            lines = [self.classifier.instructions, "", "Targets:"]
            lines += [f"- {t}: {self.descriptions.get(t, t)}" for t in targets]
            self._prepared[key] = (targets, route_choice_model(targets),
                                   SystemMessage("\n".join(lines)))
        return self._prepared[key]

    def _structured(self, model: BaseChatModel, schema: type[BaseModel]) -> Any:
        """The model bound to the choice schema (built once per model and schema)."""
        key = (id(model), schema)
        found = self._prepared.get(key)
        if found is None or found[0] is not model:
            found = (model, model.with_structured_output(schema))
            self._prepared[key] = found
        return found[1]

    async def decide(
        self,
        text: str,
        state: Mapping[str, Any],
        allowed: Sequence[str],
        model_for: Callable[[str], BaseChatModel],
    ) -> RouteDecision:
        """Rules, then the LLM tier (bounded, retried on transient failures), then the default."""
        decided = self._by_rule(text, state)
        if decided is not None:
            return decided
        classifier = self.classifier
        assert classifier is not None
        targets, schema, system = self._prepare(allowed)
        prompt = [system, HumanMessage(text)]
        failure: BaseException | None = None
        failures: list[dict[str, Any]] = []
        attempts = 0
        for attempts in range(1, classifier.max_attempts + 1):  # noqa: B007 - read after the loop
            last = attempts == classifier.max_attempts
            try:
                model = self._structured(model_for(classifier.model), schema)
                raw = await asyncio.wait_for(model.ainvoke(prompt), classifier.timeout)
            except GraphBubbleUp:
                raise
            except TimeoutError:
                failure = TimeoutError(f"no answer within {classifier.timeout:g}s")
                failures.append(_failed(attempts, failure, retried=not last))
                continue
            except Exception as exc:  # provider down, bad answer: retried if transient
                failure = exc
                if not is_transient(exc):
                    failures.append(_failed(attempts, exc, retried=False))
                    break
                wait = retry_after(exc) if not last else None
                failures.append(_failed(attempts, exc, retried=not last, wait=wait))
                if wait:
                    await asyncio.sleep(wait)  # the provider said when to come back
                continue
            return self._settle(raw, schema, targets, attempts, tuple(failures))
        return self._rejected(failure, attempts, tuple(failures))

    def _rejected(self, exc: BaseException | None, attempts: int,
                  failures: tuple[dict[str, Any], ...] = ()) -> RouteDecision:
        text = str(exc).splitlines()[0] if exc is not None and str(exc) else ""
        kind = type(exc).__name__ if exc is not None else "no answer"
        return RouteDecision("default", self.default, f"LLM answer rejected ({kind}): {text}",
                             attempts=attempts, failures=failures)

    def _settle(self, raw: Any, schema: type[BaseModel], targets: Sequence[str],
                attempts: int, failures: tuple[dict[str, Any], ...] = ()) -> RouteDecision:
        assert self.classifier is not None
        try:
            choice: Any = schema.model_validate(raw if isinstance(raw, dict) else raw.model_dump())
        except (ValidationError, AttributeError) as exc:
            return self._rejected(exc, attempts, failures)
        if choice.target not in targets:  # defence in depth; the Literal already forbids it
            return RouteDecision("default", self.default, f"LLM chose unknown {choice.target!r}",
                                 attempts=attempts, failures=failures)
        if choice.confidence < self.classifier.threshold:
            return RouteDecision(
                "default",
                self.default,
                f"LLM confidence {choice.confidence:.2f} below {self.classifier.threshold:.2f} "
                f"(suggested {choice.target}: {choice.reason})",
                choice.confidence,
                attempts,
                failures,
            )
        return RouteDecision("llm", choice.target, choice.reason, choice.confidence, attempts,
                             failures)


def _failed(number: int, error: BaseException, *, retried: bool,
            wait: float | None = None) -> dict[str, Any]:
    """One failed call of the router's LLM tier, as its ``attempt_failed`` event records it."""
    return {"attempt": number, "error": describe_error(error), "transient": is_transient(error),
            "retried": retried, "wait": wait}


def router_node(
    name: str,
    router: Router,
    transitions: Transitions,
    models: Callable[[str], BaseChatModel],
    context_ttl: timedelta | None = None,
) -> Callable[[dict[str, Any]], Awaitable[Command]]:
    """The routing node: a new request opens a task and is routed; a returning one is closed,
    handed on, or sent to the default."""

    def returning(state: Mapping[str, Any], request_id: str, task: Mapping[str, Any]) -> Step:
        if TaskStatus(task.get("status", "pending")).finished:
            decision = RouteDecision("finish", END, f"task {task['status']}")
        elif task.get("handoff_to"):
            decision = RouteDecision("handoff", task["handoff_to"], "agent handed off")
        else:
            decision = RouteDecision("default", router.default, "task returned unfinished")
        update: dict[str, Any] = {"audit": [audit_event(AuditKind.ROUTE, node=name,
                                                        task_id=request_id,
                                                        **decision.as_dict())]}
        if decision.tier == "handoff":
            update["tasks"] = {request_id: {"handoff_to": None, "agent": decision.target}}
        return Step(decision.target, update)

    def opened(state: Mapping[str, Any], request_id: str, text: str,
               decision: RouteDecision) -> Step:
        now = utcnow()
        tasks = {**retired_tasks(state.get("tasks") or {}),
                 request_id: {"id": request_id, "query": text, "agent": decision.target,
                              "status": TaskStatus.IN_PROGRESS.value, "created_at": now,
                              "updated_at": now, "result": None, "handoff_to": None}}
        expired = expired_context(state.get("context") or {}, context_ttl, now)
        return Step(decision.target, {
            **({"context": expired} if expired else {}),
            "hops": HOPS_RESET,
            "active_task": request_id,
            "outputs": Overwrite({}),  # the outputs of this request's agents, from here on
            "tasks": tasks,
            "audit": [audit_event(AuditKind.ROUTE, node=name, task_id=request_id,
                                  **decision.as_dict())],
        })

    async def route(state: dict[str, Any]) -> Command:
        request = latest_request(state)
        if request is None:
            decision = RouteDecision("finish", END, "no request to route")
            step = Step(END, {"audit": [audit_event(AuditKind.ROUTE, node=name,
                                                    **decision.as_dict())]})
            return transitions.command(name, state, step)
        task = (state.get("tasks") or {}).get(request.id)
        if task is not None:
            return transitions.command(name, state, returning(state, request.id, task))
        decision = await routed(name, router.decide(request.text, state,
                                                    transitions.table.targets(name), models))
        step = opened(state, request.id, request.text, decision)
        if decision.failures:
            ref = router.classifier.model if router.classifier is not None else None
            resolve = getattr(models, "resolve_name", None)
            model = resolve(ref) if callable(resolve) and ref else ref
            step.update["audit"][:0] = [
                audit_event(AuditKind.ATTEMPT_FAILED, node=name, task_id=request.id, agent=name,
                            model=model, **failure) for failure in decision.failures]
        return transitions.command(name, state, step)

    route.__name__ = name
    return route
