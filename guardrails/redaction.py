"""Redacting a request: the engine's use of the redacting guards (``RedactPII``).

Every message of a new request is redacted before it is recorded, checkpointed or shown to a
model; the placeholders' real values go to the thread's vault (``accord.guardrails.vault``).
A run without a thread (no saver) is redacted too; its values are kept nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from accord.guardrails.pii import RedactPII
from accord.guardrails.vault import vault_update


def redactors(guards: Sequence[Any]) -> tuple[RedactPII, ...]:
    """The redacting guards among a graph's input guardrails."""
    return tuple(g for g in guards if isinstance(g, RedactPII))


def _redact_content(guards: Sequence[RedactPII], content: Any, known: dict[str, str],
                    new: dict[str, str]) -> Any:
    if isinstance(content, str):
        for guard in guards:
            done = guard.redact(content, known)
            known.update(done.new)
            new.update(done.new)
            content = done.text
        return content
    if isinstance(content, list):
        return [_redact_content(guards, block, known, new) if isinstance(block, str)
                else ({**block, "text": _redact_content(guards, block["text"], known, new)}
                      if isinstance(block, Mapping) and isinstance(block.get("text"), str)
                      else block)
                for block in content]
    return content


def redact_messages(guards: Sequence[RedactPII], messages: Sequence[BaseMessage],
                    known: Mapping[str, str]) -> tuple[list[BaseMessage], dict[str, str]]:
    """The messages redacted, and the placeholders they introduced (with their values)."""
    seen, new = dict(known), {}
    out = []
    for message in messages:
        content = _redact_content(guards, message.content, seen, new)
        out.append(message if content == message.content
                   else message.model_copy(update={"content": content}))
    return out, new


def redact_request_sync(guards: Sequence[Any], request: dict[str, Any], saver: Any,
                        thread_id: str | None) -> dict[str, Any]:
    """The request with its messages redacted; new placeholders stored in the thread's vault."""
    active = redactors(guards)
    if not active:
        return request
    messages = list(request["messages"])
    redacted, new = redact_messages(active, messages, {})
    if saver is None or thread_id is None or not new:
        return {**request, "messages": redacted}  # nothing for the vault: no database trip
    result: list[list[BaseMessage]] = []

    def plan(known: dict[str, str]) -> dict[str, str]:
        redacted, new = redact_messages(active, messages, known)
        result[:] = [redacted]
        return new

    vault_update(saver, str(thread_id), plan)
    return {**request, "messages": result[0]}


async def redact_request(guards: Sequence[Any], request: dict[str, Any], saver: Any,
                         thread_id: str | None) -> dict[str, Any]:
    """:func:`redact_request_sync` off the event loop when it writes to a database."""
    if not redactors(guards):
        return request
    if saver is None or thread_id is None:
        return redact_request_sync(guards, request, None, None)
    probe, new = redact_messages(redactors(guards), list(request["messages"]), {})
    if not new:
        return {**request, "messages": probe}
    return await saver._offload(redact_request_sync, guards, request, saver, thread_id)


__all__ = ["redact_messages", "redact_request", "redactors"]
