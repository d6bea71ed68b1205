"""The one shape a request takes: ``{"messages": [message, ...]}``, checked at the entry.

Every entry point passes here before anything is saved, so a thread never holds a value its
state schema cannot read back. Messages get their ids now: a request recorded before work
starts and re-submitted after a crash opens the same task, with the same tool-call keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    convert_to_messages,
    messages_from_dict,
    messages_to_dict,
)

from accord.engine.errors import InvalidInput

INPUT_KEYS = frozenset({"messages"})
"""What an accord graph accepts as input."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_content(index: int, content: Any) -> None:
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(
        isinstance(block, str) or (isinstance(block, Mapping) and "type" in block)
        for block in content
    ):
        return
    raise InvalidInput(
        f"messages[{index}].content must be text or a list of content blocks, "
        f"got {type(content).__name__}"
    )


def validate_request(value: Any) -> dict[str, list[BaseMessage]]:
    """The request as typed messages with ids; raises :class:`InvalidInput` with one line."""
    if not isinstance(value, Mapping):
        raise InvalidInput(
            "input must be an object {'messages': [...]}, "
            f"got {type(value).__name__}"
        )
    unknown = sorted(set(value) - INPUT_KEYS)
    if unknown:
        raise InvalidInput(f"input has unknown key(s) {', '.join(map(repr, unknown))}; "
                           "an accord graph takes {'messages': [...]}")
    messages = value.get("messages")
    if not isinstance(messages, list | tuple):
        raise InvalidInput(f"input 'messages' must be a list of messages, "
                           f"got {type(messages).__name__}")
    if not messages:
        raise InvalidInput("input 'messages' is empty")
    out: list[BaseMessage] = []
    for index, raw in enumerate(messages):
        content = raw.get("content") if isinstance(raw, Mapping) else getattr(raw, "content", None)
        if isinstance(raw, Mapping | BaseMessage):
            _check_content(index, content)
        try:
            (message,) = convert_to_messages([raw])
        except Exception as exc:  # noqa: BLE001 - langchain raises several types here
            raise InvalidInput(f"messages[{index}] is not a message: {_first_line(exc)}") from None
        _check_content(index, message.content)
        if not message.id:
            message = message.model_copy(update={"id": str(uuid.uuid4())})
        out.append(message)
    return {"messages": out}


def request_text(request: Mapping[str, Any]) -> str:
    """The text of the request's last human message (what guardrails and the router read)."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def request_texts(request: Mapping[str, Any]) -> list[str]:
    """The text of every message of the request (what input guardrails check, each one)."""
    return [message.text for message in request.get("messages") or []]


def request_task(request: Mapping[str, Any]) -> str | None:
    """The task a request opens: its last human message's id."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message.id
    return None


def dump_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as JSON, to record it before work starts."""
    return {"messages": messages_to_dict(list(request["messages"]))}


def load_request(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded request back as messages (same ids)."""
    return {"messages": messages_from_dict(list(recorded.get("messages") or []))}


__all__ = [
    "dump_request",
    "load_request",
    "request_task",
    "request_text",
    "request_texts",
    "validate_request",
]
