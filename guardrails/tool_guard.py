"""``ToolPermissionGuard``: an LLM agent's tool calls checked against its declarations.

A langchain ``AgentMiddleware`` on every LLM agent: a call of a tool the agent does not declare
(the model named one it was not given) is answered with an error and recorded
(``permission_denied``); a call that :func:`accord.guardrails.permissions.visible_to` refuses
does not run, or its result is withheld from the model, and is recorded the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage

from accord.guardrails.call import CALL
from accord.guardrails.permissions import DataNotVisible, check_args, check_result
from accord.records import AuditKind

HANDOFF_TARGET = "accord_handoff_to"
"""Metadata of a handoff tool (``accord.agents.handoff``): always allowed."""


def _refused(request: Any, message: str) -> ToolMessage:
    call = request.tool_call
    return ToolMessage(content=f"Not permitted: {message}", tool_call_id=call["id"],
                       name=call["name"], status="error")


def _value(message: Any) -> Any:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


class ToolPermissionGuard(AgentMiddleware):
    """Declared tools only; data only for the user who owns it."""

    def __init__(self, agent: str, tools: tuple[str, ...]) -> None:
        super().__init__()
        self.agent = agent
        self.declared = frozenset(tools)

    async def awrap_tool_call(self, request: Any,
                              handler: Callable[[Any], Awaitable[Any]]) -> Any:
        tool = request.tool
        if tool is not None and HANDOFF_TARGET in (tool.metadata or {}):
            return await handler(request)
        name = request.tool_call["name"]
        if tool is None or name not in self.declared:
            reason = f"tool {name!r} is not declared by agent {self.agent}"
            if (call := CALL.get()) is not None:
                call.note(AuditKind.PERMISSION_DENIED, reason=reason, tool=name)
            # a name the model was not given: langchain answers it as an unknown tool
            return await handler(request) if tool is None else _refused(request, reason)
        try:
            # an owner check may read the tool's data: off the event loop
            await asyncio.to_thread(check_args, tool, request.tool_call.get("args") or {})
        except DataNotVisible as denied:
            return _refused(request, str(denied))
        result = await handler(request)
        if isinstance(result, ToolMessage) and result.status != "error":
            try:
                await asyncio.to_thread(check_result, tool, _value(result))
            except DataNotVisible as denied:
                return _refused(request, str(denied))
        return result


__all__ = ["ToolPermissionGuard"]
