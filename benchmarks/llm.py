"""The scripted LLM every contender talks to: same latency, same token counts, same mistakes.

It plays three roles, recognised from the tools bound to the request:

- a *classifier* (accord's LLM router tier, structured output ``RouteChoice``) and a
  *supervisor* (``transfer_to_<agent>`` handoff tools): both pick the request's label with a
  fixed, seeded probability ``accuracy`` and otherwise a wrong agent; the draw depends only on
  the request text, so a request is misclassified by both contenders or by neither;
- a *specialist agent* (the support tools): one tool call, then a final text answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from accord.testing import ScriptedChatModel, StructuredReply, ToolCallReply
from benchmarks.workload import AGENTS, EMAILS

INVOICE = re.compile(r"\bINV-\d{4}\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
REQUEST = re.compile(r"\(#\d+\)")
HANDBACK = "transfer_back_to_supervisor"


def _draw(text: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SupportResponder:
    """``responder(messages, *, tools, schema)`` for :class:`ScriptedChatModel`."""

    def __init__(self, labels: Mapping[str, str], *, accuracy: float = 0.9, seed: int = 11) -> None:
        self.labels = dict(labels)
        self.accuracy = accuracy
        self.seed = seed

    # what the request is ------------------------------------------------------------------
    @staticmethod
    def _last_human(messages: list[BaseMessage]) -> tuple[int, str]:
        for i in range(len(messages) - 1, -1, -1):
            if isinstance(messages[i], HumanMessage):
                return i, messages[i].text
        return -1, ""

    def _request(self, text: str) -> str:
        """The workload text inside a prompt (accord's handoff prefixes ``Task <id>: ``)."""
        found = REQUEST.search(text)
        if found is None:
            return text
        return next((t for t in self.labels if t.endswith(found.group(0))), text)

    def classify(self, text: str, allowed: list[str]) -> str:
        """The label with probability ``accuracy``, else a wrong allowed agent (deterministic)."""
        request = self._request(text)
        label = self.labels.get(request, AGENTS[-1])
        if _draw(request, self.seed) < self.accuracy or len(allowed) < 2:
            return label
        wrong = sorted(a for a in allowed if a != label)
        return wrong[int(_draw(request, self.seed + 1) * len(wrong))]

    # the responder ---------------------------------------------------------------------------
    def __call__(self, messages: list[BaseMessage], *, tools: list[str], schema: Any) -> Any:
        at, text = self._last_human(messages)
        if "RouteChoice" in tools or schema is not None:
            target = self.classify(text, list(AGENTS))
            return StructuredReply({"target": target, "confidence": 0.85, "reason": "scripted"})
        handoffs = [t for t in tools if t.startswith("transfer_to_")]
        later = messages[at + 1 :]
        if handoffs:
            if any(isinstance(m, ToolMessage) and m.name == HANDBACK for m in later):
                return "Your request has been handled; anything else I can do?"
            target = self.classify(text, [t.removeprefix("transfer_to_") for t in handoffs])
            return ToolCallReply(f"transfer_to_{target}", {})
        used = [m for m in later if isinstance(m, ToolMessage) and m.name in tools]
        if used:
            return f"Done. {str(used[-1].content)[:120]}"
        return self._tool_call(text, tools)

    @staticmethod
    def _tool_call(text: str, tools: list[str]) -> ToolCallReply:
        invoice = INVOICE.search(text)
        email = EMAIL.search(text)
        if "get_invoice" in tools and invoice:
            return ToolCallReply("get_invoice", {"invoice_id": invoice.group(0)})
        if "search_kb" in tools:
            return ToolCallReply("search_kb", {"query": text[:200]})
        if "send_password_reset" in tools and "password" in text.lower():
            return ToolCallReply("send_password_reset", {"email": email.group(0) if email else EMAILS[0]})
        if "lookup_customer" in tools:
            return ToolCallReply("lookup_customer", {"email": email.group(0) if email else EMAILS[0]})
        return ToolCallReply(tools[0], {})


def scripted_model(
    labels: Mapping[str, str], *, latency: float = 0.0, tokens_per_message: int = 40,
    accuracy: float = 0.9,
) -> ScriptedChatModel:
    """A fresh model (fresh counters) playing the support LLM."""
    return ScriptedChatModel(
        responder=SupportResponder(labels, accuracy=accuracy),
        latency=latency,
        tokens_per_message=tokens_per_message,
    )
