"""Scripted replies shared by `ScriptedChatModel` and `OpenAICompatServer`.

A *reply* is what a scripted model answers to one request:

- `str`: a plain text answer;
- `AIMessage`: returned as is (a copy, with usage filled in when missing);
- `ToolCallReply` or a list of them: one assistant message carrying tool calls;
- `StructuredReply`: structured output, sent as a call to the bound schema tool
  (or as JSON text when the request asked for a JSON response format);
- an exception instance: raised for that request (failure-handling tests).

Replies come from a script (consumed in order) and then, once the script is used
up, from a `responder(messages, *, tools, schema)` callable.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel

__all__ = [
    "Reply",
    "ReplyScript",
    "Responder",
    "ScriptExhausted",
    "StructuredReply",
    "TokenCounter",
    "ToolCallReply",
]


@dataclass(frozen=True)
class ToolCallReply:
    """The model calls one tool."""

    name: str
    """Name of the tool to call."""
    args: dict[str, Any] = field(default_factory=dict)
    """Arguments of the call, as the model would send them."""
    id: str | None = None
    """Tool call id; a deterministic `call_<request>_<index>` id when None."""


@dataclass(frozen=True)
class StructuredReply:
    """The model answers with structured output (`with_structured_output`, response formats)."""

    data: dict[str, Any] | BaseModel
    """The structured answer; a pydantic instance is dumped to JSON-compatible data."""
    name: str | None = None
    """Tool name to answer with; defaults to the schema / single bound tool / model class name."""

    def as_dict(self) -> dict[str, Any]:
        """The data as a JSON-compatible dict."""
        if isinstance(self.data, BaseModel):
            return self.data.model_dump(mode="json")
        return dict(self.data)

    def tool_name(self, *, tools: Sequence[str], forced: str | None = None) -> str | None:
        """The tool name this reply is sent as, or None to send it as JSON text."""
        if self.name:
            return self.name
        if forced:
            return forced
        if len(tools) == 1:
            return tools[0]
        if isinstance(self.data, BaseModel) and type(self.data).__name__ in tools:
            return type(self.data).__name__
        return None


Reply: TypeAlias = (
    str | AIMessage | ToolCallReply | list[ToolCallReply] | StructuredReply | BaseException
)
"""Anything a scripted model can answer to one request."""


class Responder(Protocol):
    """Rule-driven replies: called with the request's messages, bound tool names and schema."""

    def __call__(
        self, messages: list[BaseMessage], *, tools: list[str], schema: Any | None
    ) -> Reply: ...


class ScriptExhausted(RuntimeError):
    """A scripted model got more requests than its script has replies (and has no responder)."""

    def __init__(self, call_number: int, script_length: int, owner: str) -> None:
        self.call_number = call_number
        self.script_length = script_length
        super().__init__(
            f"{owner}: script exhausted at call {call_number}: the script has "
            f"{script_length} repl{'y' if script_length == 1 else 'ies'} and no responder"
        )


class ReplyScript:
    """A thread-safe queue of replies with an optional responder behind it."""

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        responder: Responder | Callable[..., Reply] | None = None,
        *,
        owner: str = "scripted model",
    ) -> None:
        self._replies = list(replies)
        self._responder = responder
        self._owner = owner
        self._position = 0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        """Scripted replies not yet consumed (the responder not counted)."""
        with self._lock:
            return len(self._replies) - self._position

    def next_reply(
        self, call_number: int, messages: list[BaseMessage], *, tools: list[str], schema: Any
    ) -> Reply:
        """The reply for request `call_number` (1-based); raises `ScriptExhausted`."""
        with self._lock:
            if self._position < len(self._replies):
                reply = self._replies[self._position]
                self._position += 1
                return reply
        if self._responder is None:
            raise ScriptExhausted(call_number, len(self._replies), self._owner)
        return self._responder(messages, tools=tools, schema=schema)


def message_text(message: BaseMessage) -> str:
    """A deterministic text rendering of a message, used for token estimates."""
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, sort_keys=True, default=str)
    for call in getattr(message, "tool_calls", None) or []:
        text += call["name"] + json.dumps(call["args"], sort_keys=True, default=str)
    return text


@dataclass
class TokenCounter:
    """Deterministic token estimates and thread-safe running totals."""

    chars_per_token: int = 4
    """Characters counted as one token when `tokens_per_message` is None."""
    tokens_per_message: int | None = None
    """When set, every message (prompt or reply) counts exactly this many tokens."""
    calls: int = 0
    """Requests counted so far."""
    prompt_tokens: int = 0
    """Prompt tokens counted so far."""
    completion_tokens: int = 0
    """Completion tokens counted so far."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def estimate(self, messages: Sequence[BaseMessage]) -> int:
        """Tokens of `messages`: fixed per message, or about one per `chars_per_token` chars."""
        if self.tokens_per_message is not None:
            return self.tokens_per_message * len(messages)
        return sum(max(1, math.ceil(len(message_text(m)) / self.chars_per_token)) for m in messages)

    def start_call(self) -> int:
        """Count one request and return its 1-based number."""
        with self._lock:
            self.calls += 1
            return self.calls

    def add(self, prompt: int, completion: int) -> None:
        """Add one request's token usage to the totals."""
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class CountsUsage:
    """Call and token counters read from ``self._tokens`` (a :class:`TokenCounter`)."""

    _tokens: TokenCounter

    @property
    def calls(self) -> int:
        """Requests made so far (including ones that raised)."""
        return self._tokens.calls

    @property
    def prompt_tokens(self) -> int:
        """Estimated prompt tokens over all requests."""
        return self._tokens.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        """Estimated completion tokens over all replies."""
        return self._tokens.completion_tokens

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self._tokens.total_tokens
