"""ScriptedChatModel: replies, tools, structured output, create_agent, counters, latency."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from accord.testing import ScriptedChatModel, ScriptExhausted, StructuredReply, ToolCallReply


class Person(BaseModel):
    name: str
    age: int


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def test_text_reply_with_usage_and_counters() -> None:
    model = ScriptedChatModel(["hello world"])
    reply = model.invoke("12345678")
    assert reply.content == "hello world"
    # 8 chars -> 2 tokens in; 11 chars -> 3 tokens out
    assert reply.usage_metadata == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    assert (model.calls, model.prompt_tokens, model.completion_tokens) == (1, 2, 3)
    assert model.total_tokens == 5
    assert [m.content for m in model.call_log[0]] == ["12345678"]
    assert model.remaining == 0


def test_tokens_per_message_is_fixed() -> None:
    model = ScriptedChatModel(["a much longer reply text"], tokens_per_message=10)
    model.invoke([("system", "s"), ("user", "u")])
    assert (model.prompt_tokens, model.completion_tokens) == (20, 10)


def test_aimessage_reply_is_copied_and_keeps_its_usage() -> None:
    given = AIMessage(
        content="x", usage_metadata={"input_tokens": 7, "output_tokens": 9, "total_tokens": 16}
    )
    model = ScriptedChatModel([given])
    reply = model.invoke("hi")
    assert reply.content == "x" and reply is not given
    assert model.total_tokens == 16


def test_bind_tools_records_names_and_returns_tool_calls() -> None:
    model = ScriptedChatModel(
        [
            [
                ToolCallReply("get_weather", {"city": "Paris"}),
                ToolCallReply("get_weather", {"city": "Oslo"}, id="x"),
            ]
        ]
    )
    reply = model.bind_tools([get_weather]).invoke("weather?")
    assert model.bound_tools == ["get_weather"]
    assert [(c["name"], c["args"], c["id"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "call_1_0"),
        ("get_weather", {"city": "Oslo"}, "x"),
    ]


@pytest.mark.parametrize("data", [{"name": "Ada", "age": 36}, Person(name="Ada", age=36)])
def test_structured_output_pydantic(data: dict | Person) -> None:
    model = ScriptedChatModel([StructuredReply(data)])
    assert model.with_structured_output(Person).invoke("who?") == Person(name="Ada", age=36)


def test_structured_output_json_schema_and_include_raw() -> None:
    schema = Person.model_json_schema()
    model = ScriptedChatModel([StructuredReply({"name": "Bo", "age": 2})] * 2)
    assert model.with_structured_output(schema).invoke("q") == {"name": "Bo", "age": 2}
    out = model.with_structured_output(Person, include_raw=True).invoke("q")
    assert out["parsed"] == Person(name="Bo", age=2) and out["parsing_error"] is None
    assert out["raw"].tool_calls[0]["name"] == "Person"


def test_structured_output_include_raw_reports_parsing_error() -> None:
    model = ScriptedChatModel([StructuredReply({"name": "Bo", "age": "not a number"})])
    out = model.with_structured_output(Person, include_raw=True).invoke("q")
    assert out["parsed"] is None and out["parsing_error"] is not None


def test_responder_sees_messages_tools_and_schema() -> None:
    seen: list[tuple[list[str], object]] = []

    def responder(messages, *, tools, schema):
        seen.append((tools, schema))
        if schema is not None:
            return StructuredReply({"name": messages[-1].content, "age": 1})
        return f"echo {messages[-1].content}"

    model = ScriptedChatModel(["scripted first"], responder=responder)
    assert model.invoke("a").content == "scripted first"
    assert model.invoke("b").content == "echo b"
    assert model.with_structured_output(Person).invoke("Cy") == Person(name="Cy", age=1)
    assert seen == [([], None), (["Person"], Person)]


def test_exhausted_script_names_the_call() -> None:
    model = ScriptedChatModel(["only"])
    model.invoke("1")
    with pytest.raises(ScriptExhausted, match="call 2: the script has 1 reply"):
        model.invoke("2")
    assert model.calls == 2


def test_exception_reply_is_raised() -> None:
    model = ScriptedChatModel([TimeoutError("provider timed out"), "recovered"])
    with pytest.raises(TimeoutError, match="provider timed out"):
        model.invoke("1")
    assert model.invoke("2").content == "recovered"


def test_unsupported_reply_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unsupported reply 42"):
        ScriptedChatModel([42]).invoke("x")


def test_stream_falls_back_to_invoke() -> None:
    model = ScriptedChatModel(["streamed"])
    chunks = list(model.stream("x"))
    assert "".join(str(c.content) for c in chunks) == "streamed"


def test_create_agent_runs_a_real_tool_loop() -> None:
    model = ScriptedChatModel(
        [ToolCallReply("get_weather", {"city": "Paris"}, id="t1"), "It is sunny in Paris."]
    )
    agent = create_agent(model=model, tools=[get_weather])
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    tool_messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_messages] == ["sunny in Paris"]
    assert result["messages"][-1].content == "It is sunny in Paris."
    assert model.calls == 2 and model.bound_tools == ["get_weather"]
    # the second request carried the tool result back to the model
    assert isinstance(model.call_log[1][-1], ToolMessage)
    assert model.call_log[1][-1].tool_call_id == "t1"


def test_create_agent_structured_response() -> None:
    model = ScriptedChatModel([StructuredReply(Person(name="Di", age=5))])
    agent = create_agent(model=model, tools=[], response_format=Person)
    result = agent.invoke({"messages": [HumanMessage("who?")]})
    assert result["structured_response"] == Person(name="Di", age=5)


async def test_async_create_agent_and_ainvoke() -> None:
    model = ScriptedChatModel([ToolCallReply("get_weather", {"city": "Rome"}), "done", "plain"])
    agent = create_agent(model=model, tools=[get_weather])
    result = await agent.ainvoke({"messages": [HumanMessage("Rome?")]})
    assert result["messages"][-1].content == "done"
    assert (await model.ainvoke("x")).content == "plain"
    assert model.calls == 3


def test_sync_latency_sleeps() -> None:
    model = ScriptedChatModel(["a"], latency=0.2)
    start = time.perf_counter()
    model.invoke("x")
    assert time.perf_counter() - start >= 0.2


async def test_async_latency_does_not_block_the_loop() -> None:
    model = ScriptedChatModel(responder=lambda messages, **_: "ok", latency=0.3)
    start = time.perf_counter()
    replies = await asyncio.gather(*(model.ainvoke(str(i)) for i in range(10)))
    elapsed = time.perf_counter() - start
    assert [r.content for r in replies] == ["ok"] * 10
    assert 0.3 <= elapsed < 1.5  # concurrent, not 10 x 0.3 s


def test_counters_are_thread_safe() -> None:
    model = ScriptedChatModel(responder=lambda messages, **_: "abcd", chars_per_token=1)

    def work(i: int) -> None:
        for _ in range(25):
            model.invoke("xy")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert model.calls == 200 and len(model.call_log) == 200
    assert (model.prompt_tokens, model.completion_tokens) == (400, 800)
