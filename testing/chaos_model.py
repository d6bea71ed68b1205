"""`ChaosModel`: a model for `OpenAICompatServer` that answers the support agents and fails
some requests on purpose, at the rates a chaos drill asks for.

Answers follow the rule-based twins of the support agents (the same tools with the same
arguments), so an LLM agent and its fallback propose the same side effect under the same
idempotency key: a side effect that happens twice is accord's fault, not the model's. The
router's classification answers with the target the request's keywords name.

Faults, each drawn per request: ``error_rate`` (HTTP 500, 503 or 429 with ``Retry-After``, or a
dropped connection), ``hang_rate`` (no answer: the client's request timeout ends it),
``corrupt_rate`` (a body that is not JSON, or a reply cut off half way).
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from accord.testing.faults import ProviderFault
from accord.testing.replies import Reply, StructuredReply, ToolCallReply

__all__ = ["ChaosModel"]

_INVOICE = re.compile(r"\bINV-\d{4}\b", re.IGNORECASE)
_AMOUNT = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|<EMAIL_\d+>")
_TARGETS = (
    ("human_triage", ("human", "manager", "complaint")),
    ("billing", ("refund", "invoice", "charged", "billing")),
    ("account", ("password", "plan", "cancel", "subscription", "account")),
    ("tech", ("error", "crash", "sync", "bug", "slow")),
)


def _task_text(messages: Sequence[BaseMessage]) -> str:
    """The task an agent was handed (``Task <id>: <query>``), or the last human message."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            text = message.text
            first = text.split("\n", 1)[0]
            return first.split(": ", 1)[1] if first.startswith("Task ") and ": " in first else text
    return ""


@dataclass
class ChaosModel:
    """A responder (``OpenAICompatServer(responder=ChaosModel(...))``), thread-safe."""

    error_rate: float = 0.0
    """Share of requests answered with a provider error."""
    hang_rate: float = 0.0
    """Share of requests never answered."""
    corrupt_rate: float = 0.0
    """Share of requests answered with a corrupt body or a truncated reply."""
    seed: int | None = None
    """Seed of the fault draws (None: a fresh one)."""
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _fault(self) -> ProviderFault | None:
        with self._lock:
            draw = self._rng.random()
            pick = self._rng.random()
        if draw < self.error_rate:
            if pick < 0.3:
                return ProviderFault.status(500)
            if pick < 0.6:
                return ProviderFault.status(503)
            if pick < 0.8:
                return ProviderFault.status(429, retry_after=0.1)
            return ProviderFault.drop()
        draw -= self.error_rate
        if draw < self.hang_rate:
            return ProviderFault.hang()
        draw -= self.hang_rate
        if draw < self.corrupt_rate:
            return ProviderFault.malformed() if pick < 0.5 else ProviderFault.truncated()
        return None

    def __call__(self, messages: list[BaseMessage], *, tools: Sequence[str],
                 schema: Any = None) -> Reply:
        fault = self._fault()
        if fault is not None:
            return fault
        text = _task_text(messages)
        if schema is not None:
            return StructuredReply(self._route(text, schema))
        if messages and isinstance(messages[-1], ToolMessage):
            return f"Done: {messages[-1].text[:200]}"
        return self._act(text, set(tools))

    @staticmethod
    def _route(text: str, schema: dict[str, Any]) -> dict[str, Any]:
        allowed = list(((schema.get("properties") or {}).get("target") or {}).get("enum") or [])
        lowered = text.lower()
        target = next((name for name, words in _TARGETS
                       if name in allowed and any(w in lowered for w in words)),
                      allowed[-1] if allowed else "human_triage")
        return {"target": target, "confidence": 0.9, "reason": "keywords of the request"}

    @staticmethod
    def _act(text: str, tools: set[str]) -> Reply:
        """The tool call the rule-based twin would make, with the same arguments."""
        email = _EMAIL.search(text)
        if "issue_refund" in tools and (invoice := _INVOICE.search(text)):
            amount = _AMOUNT.search(text)
            if amount is not None and re.search(r"refund", text, re.IGNORECASE):
                return ToolCallReply("issue_refund", {
                    "invoice_id": invoice.group(0).upper(), "amount": float(amount.group(1)),
                    "reason": text[:200]})
            return ToolCallReply("get_invoice", {"invoice_id": invoice.group(0).upper()})
        if "search_kb" in tools:
            return ToolCallReply("create_ticket", {
                "subject": "Technical issue", "body": text, "queue": "engineering",
                "customer_email": email.group(0).lower() if email else None})
        if "send_password_reset" in tools and "create_ticket" in tools:
            return ToolCallReply("create_ticket", {
                "subject": "Account request", "body": text, "queue": "support",
                "customer_email": email.group(0).lower() if email else None})
        return "I could not act on this request."
