"""`ScriptedChatModel`: a deterministic chat model for tests and benchmarks.

```python
from accord.testing import ScriptedChatModel, ToolCallReply

model = ScriptedChatModel([ToolCallReply("get_weather", {"city": "Paris"}), "It is sunny."])
agent = create_agent(model=model, tools=[get_weather])
agent.invoke({"messages": [("user", "Weather in Paris?")]})
assert model.calls == 2 and model.bound_tools == ["get_weather"]
```
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from accord.testing.replies import (
    CountsUsage,
    Reply,
    ReplyScript,
    StructuredReply,
    TokenCounter,
    ToolCallReply,
)

__all__ = ["ScriptedChatModel"]

_SCHEMA_KWARG = "accord_structured_schema"
_TOOL_CHOICE_MODES = {"auto", "any", "required", "none"}


def forced_tool_name(tool_choice: Any) -> str | None:
    """The tool name a `tool_choice` value forces, if it names one."""
    if isinstance(tool_choice, str) and tool_choice not in _TOOL_CHOICE_MODES:
        return tool_choice
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function") or {}
        return function.get("name") or tool_choice.get("name")
    return None


class ScriptedChatModel(CountsUsage, BaseChatModel):
    """A chat model that answers from a script of replies, then from a responder.

    Supports `bind_tools`, `with_structured_output` (pydantic models, dict / JSON
    schemas, `include_raw`) and `langchain.agents.create_agent`. Counts calls and
    (deterministically estimated) tokens, thread- and task-safely.
    """

    script: list[Any] = Field(default_factory=list)
    """Replies consumed in order, one per request (see `accord.testing.replies`)."""
    responder: Callable[..., Any] | None = None
    """`(messages, *, tools, schema) -> reply`, used once the script is exhausted."""
    latency: float = 0.0
    """Seconds each request takes (`time.sleep` sync, `asyncio.sleep` async)."""
    chars_per_token: int = 4
    """Characters estimated as one token (when `tokens_per_message` is None)."""
    tokens_per_message: int | None = None
    """When set, every prompt message and every reply counts exactly this many tokens."""
    model_name: str = "scripted"
    """Model name reported in `response_metadata`."""

    _script: ReplyScript = PrivateAttr()
    _tokens: TokenCounter = PrivateAttr()
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _call_log: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _bound_tools: list[str] = PrivateAttr(default_factory=list)

    def __init__(self, script: Sequence[Reply] | None = None, /, **kwargs: Any) -> None:
        if script is not None:
            kwargs["script"] = list(script)
        super().__init__(**kwargs)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._script = ReplyScript(self.script, self.responder, owner="ScriptedChatModel")
        self._tokens = TokenCounter(self.chars_per_token, self.tokens_per_message)

    # -- counters ---------------------------------------------------------------------------


    @property
    def call_log(self) -> list[list[BaseMessage]]:
        """The messages of each request, in order."""
        with self._lock:
            return [list(messages) for messages in self._call_log]




    @property
    def bound_tools(self) -> list[str]:
        """Tool names of the most recent `bind_tools` call."""
        with self._lock:
            return list(self._bound_tools)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet consumed."""
        return self._script.remaining

    # -- langchain API ----------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "accord-scripted-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any form `convert_to_openai_tool` accepts); records their names."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = [tool.get("function", {}).get("name", tool.get("name", "")) for tool in formatted]
        with self._lock:
            self._bound_tools = names
        structured = kwargs.get("ls_structured_output_format") or {}
        if "schema" in structured:
            kwargs[_SCHEMA_KWARG] = structured["schema"]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            time.sleep(self.latency)
        return self._respond(messages, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._respond(messages, kwargs)

    # -- internals --------------------------------------------------------------------------

    def _respond(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        tools = [
            tool.get("function", {}).get("name", tool.get("name", ""))
            for tool in kwargs.get("tools") or []
        ]
        schema = kwargs.get(_SCHEMA_KWARG)
        forced = forced_tool_name(kwargs.get("tool_choice"))
        if forced is None and schema is not None:
            forced = convert_to_openai_tool(schema)["function"]["name"]
        call_number = self._tokens.start_call()
        with self._lock:
            self._call_log.append(list(messages))
        reply = self._script.next_reply(call_number, list(messages), tools=tools, schema=schema)
        if isinstance(reply, BaseException):
            raise reply
        message = self._to_message(reply, call_number, tools=tools, forced=forced)
        usage = message.usage_metadata
        if usage is None:
            prompt = self._tokens.estimate(messages)
            completion = self._tokens.estimate([message])
            message.usage_metadata = {
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
            }
        else:
            prompt, completion = usage["input_tokens"], usage["output_tokens"]
        self._tokens.add(prompt, completion)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _to_message(
        self, reply: Reply, call_number: int, *, tools: list[str], forced: str | None
    ) -> AIMessage:
        metadata = {"model_name": self.model_name, "finish_reason": "stop"}
        if isinstance(reply, str):
            return AIMessage(content=reply, response_metadata=metadata)
        if isinstance(reply, AIMessage):
            return reply.model_copy(deep=True)
        if isinstance(reply, StructuredReply):
            name = reply.tool_name(tools=tools, forced=forced)
            if name is None:
                return AIMessage(content=json.dumps(reply.as_dict()), response_metadata=metadata)
            reply = ToolCallReply(name, reply.as_dict())
        if isinstance(reply, ToolCallReply):
            reply = [reply]
        if isinstance(reply, list) and all(isinstance(r, ToolCallReply) for r in reply):
            calls = [
                {
                    "name": r.name,
                    "args": dict(r.args),
                    "id": r.id or f"call_{call_number}_{i}",
                    "type": "tool_call",
                }
                for i, r in enumerate(reply)
            ]
            metadata["finish_reason"] = "tool_calls"
            return AIMessage(content="", tool_calls=calls, response_metadata=metadata)
        msg = (
            f"ScriptedChatModel: call {call_number}: unsupported reply {reply!r}; expected str, "
            "AIMessage, ToolCallReply, list[ToolCallReply], StructuredReply or an exception"
        )
        raise TypeError(msg)
