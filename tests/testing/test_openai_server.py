"""OpenAICompatServer driven by the real langchain_openai.ChatOpenAI."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from accord.testing import (
    FaultKind,
    OpenAICompatServer,
    ProviderFault,
    StructuredReply,
    ToolCallReply,
)


class Person(BaseModel):
    name: str
    age: int


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def chat(server: OpenAICompatServer, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=server.base_url, api_key="test", max_retries=0, **kwargs
    )


def test_plain_reply_records_request_and_usage() -> None:
    with OpenAICompatServer(["Hello there"]) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        reply = chat(server).invoke("hi")
    assert reply.content == "Hello there"
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert server.requests[0]["model"] == "gpt-4o-mini"
    assert reply.usage_metadata["input_tokens"] == server.prompt_tokens == 1
    assert reply.usage_metadata["output_tokens"] == server.completion_tokens == 3
    assert server.calls == 1 and server.remaining == 0


def test_bind_tools_tool_call() -> None:
    with OpenAICompatServer([ToolCallReply("add", {"a": 1, "b": 2}, id="c1")]) as server:
        reply = chat(server).bind_tools([add]).invoke("1+2?")
    assert reply.tool_calls == [
        {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1", "type": "tool_call"}
    ]
    assert server.requests[0]["tools"][0]["function"]["name"] == "add"


def test_structured_output_default_json_schema() -> None:
    with OpenAICompatServer([StructuredReply(Person(name="Ada", age=36))]) as server:
        person = chat(server).with_structured_output(Person).invoke("who?")
    assert person == Person(name="Ada", age=36)
    response_format = server.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Person"


def test_structured_output_function_calling_include_raw() -> None:
    with OpenAICompatServer([StructuredReply({"name": "Bo", "age": 2})]) as server:
        model = chat(server).with_structured_output(
            Person, method="function_calling", include_raw=True
        )
        out = model.invoke("who?")
    assert out["parsed"] == Person(name="Bo", age=2)
    assert server.requests[0]["tool_choice"]["function"]["name"] == "Person"


def test_responder_gets_schema_for_json_schema_requests() -> None:
    def responder(messages, *, tools, schema):
        assert schema is not None and schema["title"] == "Person"
        return StructuredReply({"name": messages[-1].content, "age": len(tools)})

    with OpenAICompatServer(responder=responder) as server:
        assert chat(server).with_structured_output(Person).invoke("Cy") == Person(name="Cy", age=0)


@pytest.mark.parametrize("stream_usage", [True, False])
def test_streaming_text(stream_usage: bool) -> None:
    with OpenAICompatServer(["one two three"]) as server:
        chunks = list(chat(server, stream_usage=stream_usage).stream("count"))
    assert "".join(c.content for c in chunks) == "one two three"
    assert len([c for c in chunks if c.content]) == 3
    assert server.requests[0]["stream"] is True
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert bool(usage) is stream_usage
    if stream_usage:
        assert usage[0]["total_tokens"] == server.total_tokens


def test_streaming_tool_call() -> None:
    with OpenAICompatServer([ToolCallReply("add", {"a": 2, "b": 3})]) as server:
        chunks = list(chat(server).bind_tools([add]).stream("2+3"))
    message = chunks[0]
    for chunk in chunks[1:]:
        message += chunk
    assert message.tool_calls[0]["name"] == "add"
    assert message.tool_calls[0]["args"] == {"a": 2, "b": 3}


def test_create_agent_tool_loop() -> None:
    script = [ToolCallReply("add", {"a": 20, "b": 22}, id="t1"), "The answer is 42."]
    with OpenAICompatServer(script) as server:
        agent = create_agent(model=chat(server), tools=[add])
        result = agent.invoke({"messages": [HumanMessage("20+22?")]})
    assert [m.content for m in result["messages"] if isinstance(m, ToolMessage)] == ["42"]
    assert result["messages"][-1].content == "The answer is 42."
    second = server.requests[1]["messages"]
    assert second[-1] == {"role": "tool", "content": "42", "tool_call_id": "t1"}
    assert json.loads(second[-2]["tool_calls"][0]["function"]["arguments"]) == {"a": 20, "b": 22}


async def test_async_create_agent_tool_loop() -> None:
    script = [ToolCallReply("add", {"a": 1, "b": 1}), "two"]
    with OpenAICompatServer(script) as server:
        agent = create_agent(model=chat(server), tools=[add])
        result = await agent.ainvoke({"messages": [HumanMessage("1+1?")]})
    assert result["messages"][-1].content == "two" and server.calls == 2


def test_exhausted_script_is_a_clear_400() -> None:
    server = OpenAICompatServer([])
    with server, pytest.raises(openai.BadRequestError, match="script exhausted at call 1"):
        chat(server).invoke("hi")
    assert server.errors == [
        "OpenAICompatServer: script exhausted at call 1: the script has 0 replies and no responder"
    ]


def test_exception_reply_is_a_500() -> None:
    server = OpenAICompatServer([RuntimeError("boom")])
    with server, pytest.raises(openai.InternalServerError, match="boom"):
        chat(server).invoke("hi")
    assert server.errors == ["RuntimeError: boom"]


def test_models_endpoint_and_404() -> None:
    with OpenAICompatServer(model="local-model") as server:
        assert openai.OpenAI(base_url=server.base_url, api_key="t").models.list().data[0].id == (
            "local-model"
        )
        assert httpx.get(f"{server.url}/v1/nope").status_code == 404


def test_stop_releases_the_port() -> None:
    server = OpenAICompatServer(["x"]).start()
    url = server.base_url
    server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=2)


# -- provider faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    "fault, error",
    [
        (ProviderFault.status(429, retry_after=3), openai.RateLimitError),
        (ProviderFault.status(503), openai.InternalServerError),
        (ProviderFault.hang(), openai.APITimeoutError),
        (ProviderFault.slow(5.0, "late"), openai.APITimeoutError),
        (ProviderFault.drop(), openai.APIConnectionError),
        (ProviderFault.truncated(), openai.APIConnectionError),
    ],
    ids=["429", "503", "hang", "slow", "drop", "truncated"],
)
def test_a_fault_reaches_the_client_as_the_providers_would(fault, error, stream) -> None:
    with OpenAICompatServer([fault, "after"]) as server:
        model = chat(server, timeout=0.5, streaming=stream)
        with pytest.raises(error) as raised:
            model.invoke("hi")
        assert model.invoke("again").content == "after"  # the next request is answered
        assert server.calls == 2 and server.faults == [fault.kind]
    if fault.retry_after is not None:
        assert raised.value.response.headers["retry-after"] == "3"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_malformed_body_is_a_json_error_and_transient(stream) -> None:
    from accord.resilience import is_transient

    with OpenAICompatServer([ProviderFault.malformed(), "after"]) as server:
        model = chat(server, streaming=stream)
        with pytest.raises(json.JSONDecodeError) as raised:
            model.invoke("hi")
        assert is_transient(raised.value)
        assert model.invoke("again").content == "after"


def test_an_empty_stream_is_transient() -> None:
    from accord.resilience import is_transient

    assert is_transient(ValueError("No generations found in stream."))
    assert not is_transient(ValueError("bad request"))


def test_a_slow_reply_within_the_timeout_is_answered() -> None:
    with OpenAICompatServer([ProviderFault.slow(0.1, "eventually")]) as server:
        assert chat(server, timeout=10).invoke("hi").content == "eventually"
    assert server.arrivals and server.faults == [FaultKind.SLOW]
