"""OpenAI Chat Completions wire format for scripted replies (used by `OpenAICompatServer`)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages

from accord.testing.replies import Reply, StructuredReply, ToolCallReply

__all__ = ["completion_body", "reply_to_message", "request_messages", "stream_chunks"]

_JSON_FORMATS = {"json_schema", "json_object"}


def request_messages(body: dict[str, Any]) -> list[BaseMessage]:
    """The request's OpenAI-format messages as langchain messages (for responders and tokens)."""
    converted = []
    for message in body.get("messages") or []:
        message = dict(message)
        if message.get("role") == "developer":
            message["role"] = "system"
        if message.get("content") is None:
            message["content"] = ""
        converted.append(message)
    return convert_to_messages(converted)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        block.get("text", "") if isinstance(block, dict) else str(block) for block in content
    )


def _tool_call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def reply_to_message(
    reply: Reply,
    call_number: int,
    *,
    tools: list[str],
    forced: str | None,
    response_format: dict[str, Any] | None,
) -> dict[str, Any]:
    """The assistant message (OpenAI format) for one scripted reply."""
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}
    if isinstance(reply, AIMessage):
        message: dict[str, Any] = {"role": "assistant", "content": _text(reply.content)}
        if reply.tool_calls:
            message["tool_calls"] = [
                _tool_call(c["name"], c["args"], c.get("id") or f"call_{call_number}_{i}")
                for i, c in enumerate(reply.tool_calls)
            ]
        return message
    if isinstance(reply, StructuredReply):
        wants_json = (response_format or {}).get("type") in _JSON_FORMATS
        name = None if wants_json else reply.tool_name(tools=tools, forced=forced)
        if name is None:
            return {"role": "assistant", "content": json.dumps(reply.as_dict())}
        reply = ToolCallReply(name, reply.as_dict())
    if isinstance(reply, ToolCallReply):
        reply = [reply]
    if isinstance(reply, list) and all(isinstance(r, ToolCallReply) for r in reply):
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                _tool_call(r.name, dict(r.args), r.id or f"call_{call_number}_{i}")
                for i, r in enumerate(reply)
            ],
        }
    msg = f"OpenAICompatServer: call {call_number}: unsupported reply {reply!r}"
    raise TypeError(msg)


def as_ai_message(message: dict[str, Any]) -> AIMessage:
    """An OpenAI assistant message as an `AIMessage` (for token estimates)."""
    calls = [
        {
            "name": c["function"]["name"],
            "args": json.loads(c["function"]["arguments"]),
            "id": c["id"],
            "type": "tool_call",
        }
        for c in message.get("tool_calls") or []
    ]
    return AIMessage(content=message.get("content") or "", tool_calls=calls)


def _finish_reason(message: dict[str, Any]) -> str:
    return "tool_calls" if message.get("tool_calls") else "stop"


def completion_body(
    message: dict[str, Any], *, call_number: int, model: str, usage: dict[str, int]
) -> dict[str, Any]:
    """A non-streaming `chat.completion` response body."""
    return {
        "id": f"chatcmpl-{call_number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {**message, "refusal": None},
                "logprobs": None,
                "finish_reason": _finish_reason(message),
            }
        ],
        "usage": usage,
    }


def stream_chunks(
    message: dict[str, Any],
    *,
    call_number: int,
    model: str,
    usage: dict[str, int],
    include_usage: bool,
) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed response, in order."""
    base = {
        "id": f"chatcmpl-{call_number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\s*\S+\s*|\s+", message.get("content") or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, _finish_reason(message))
    if include_usage:
        yield {**base, "choices": [], "usage": usage}
