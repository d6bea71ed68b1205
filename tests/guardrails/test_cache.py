"""The request cache: a repeated model call of an LLM agent is answered from ``accord_cache``,
keyed by agent id, version and the normalised conversation, within its TTL; hits are recorded;
an answer that calls a side-effecting tool is never stored."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from accord.agents import AgentSpec, ModelResolver, read_only
from accord.checkpoints import open_saver
from accord.graphs import Router, Workflow
from accord.guardrails import CacheRule, Limits, LimitsConfigError, limits_from, usage_for
from accord.guardrails import cache as cache_module
from accord.testing import ScriptedChatModel

PRICES = {"openai:gpt-4o-mini": {"input": 100, "output": 100}}
LOOKED_UP: list[str] = []
NOTED: list[str] = []


@read_only
@tool
def lookup(what: str) -> str:
    """Look something up."""
    LOOKED_UP.append(what)
    return f"found {what}"


@tool
def note(text: str) -> str:
    """Write a note to the customer's file (a side effect)."""
    NOTED.append(text)
    return "noted"


def call(name: str, **args) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": "c1", "type": "tool_call"}],
                     usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})


def text(content: str) -> AIMessage:
    return AIMessage(content, usage_metadata={"input_tokens": 10, "output_tokens": 5,
                                              "total_tokens": 15})


def flow(model: ScriptedChatModel, *, version: str = "1.0.0", cache: dict | None = None,
         tools: tuple[str, ...] = ("lookup", "note")) -> Workflow:
    limits = limits_from({"prices": PRICES, "cache": cache if cache is not None else {"ttl": 60}})
    spec = AgentSpec(id="faq", version=version, purpose="answers questions", kind="llm",
                     model="small", tools=tools)
    built = Workflow("faq", router=Router(default="faq"), max_hops=6, tools=[lookup, note],
                     models=ModelResolver(models={"small": model}), limits=limits)
    built.agent(spec, node="faq")
    return built.transitions({"router": ["faq", "END"], "faq": ["router"]})


def ask(graph, thread: str, question: str = "what are your opening hours?") -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": question}]},
                        {"configurable": {"thread_id": thread, "user_id": "u1"}})


def hits(out: dict) -> list[dict]:
    return [e for e in out["audit"] if e["kind"] == "cache_hit"]


@pytest.fixture
def saver(db_url):
    """accord's saver on memory, SQLite and PostgreSQL (the root conftest's ``db_url``)."""
    with open_saver(db_url) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _clear():
    LOOKED_UP.clear()
    NOTED.clear()


def test_the_same_question_is_answered_from_the_cache_once_recorded(saver):
    model = ScriptedChatModel([call("lookup", what="hours"), text("9 to 5"), "never"])
    graph = flow(model).compile(checkpointer=saver)

    first = ask(graph, "c-1")
    assert first["messages"][-1].content == "9 to 5" and model.calls == 2 and not hits(first)

    # another thread, the same words with other spacing: no model call, the tool runs again
    second = ask(graph, "c-2", "what are  your opening\nhours? ")
    assert second["messages"][-1].content == "9 to 5"
    assert model.calls == 2
    assert LOOKED_UP == ["hours", "hours"]  # a cached answer's read-only call is made afresh
    assert [h["agent"] for h in hits(second)] == ["faq", "faq"]
    assert all(h["version"] == "1.0.0" for h in hits(second))
    # a hit costs nothing: only the first run's two model calls are in the usage
    [row] = usage_for(saver).summary("agent")
    assert row.calls == 2

    # a different question is a miss
    other = ScriptedChatModel([text("we are closed on Sundays")])
    graph2 = flow(other).compile(checkpointer=saver)
    assert ask(graph2, "c-3", "are you open on Sunday?")["messages"][-1].content.startswith("we")
    assert other.calls == 1


def test_a_new_version_or_an_expired_entry_asks_the_model(saver, monkeypatch):
    model = ScriptedChatModel([text("9 to 5"), text("8 to 6"), text("10 to 4")])
    ask(flow(model, tools=()).compile(checkpointer=saver), "v-1")
    assert model.calls == 1

    newer = flow(model, version="1.1.0", tools=()).compile(checkpointer=saver)
    assert ask(newer, "v-2")["messages"][-1].content == "8 to 6" and model.calls == 2
    assert ask(newer, "v-3")["messages"][-1].content == "8 to 6" and model.calls == 2  # a hit

    later = cache_module._now() + 61  # past the 60 s TTL
    monkeypatch.setattr(cache_module, "_now", lambda: later)
    out = ask(newer, "v-4")
    assert out["messages"][-1].content == "10 to 4" and model.calls == 3 and not hits(out)


def test_an_answer_that_calls_a_side_effecting_tool_is_never_stored(saver):
    model = ScriptedChatModel([call("note", text="called"), text("noted it"),
                               call("note", text="called"), "never"])
    graph = flow(model).compile(checkpointer=saver)
    ask(graph, "s-1")
    out = ask(graph, "s-2")
    # the side-effecting call is asked of the model again, and made again...
    assert model.calls == 3 and NOTED == ["called", "called"]
    # ...while the answer after it, which calls nothing, comes from the cache
    assert out["messages"][-1].content == "noted it" and len(hits(out)) == 1


def test_only_the_agents_the_rule_names_are_cached(saver):
    model = ScriptedChatModel([text("one"), text("two")])
    graph = flow(model, cache={"ttl": 60, "agents": ["someone_else"]},
                 tools=()).compile(checkpointer=saver)
    ask(graph, "a-1")
    assert ask(graph, "a-2")["messages"][-1].content == "two" and model.calls == 2


def test_the_cache_rule_is_validated_naming_the_place():
    with pytest.raises(LimitsConfigError, match=r"limits.yaml: cache.ttl: .*greater than 0"):
        limits_from({"cache": {"ttl": 0}}, source="limits.yaml")
    with pytest.raises(LimitsConfigError, match=r"cache.colour"):
        limits_from({"cache": {"ttl": 5, "colour": "red"}}, source="limits.yaml")
    assert Limits(cache=CacheRule(ttl=5)).cache.covers("anyone")


def test_expired_entries_are_purged(tmp_path, monkeypatch):
    model = ScriptedChatModel([text("9 to 5")])
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        ask(flow(model, tools=()).compile(checkpointer=saver), "p-1")
        store = cache_module.cache_for(saver)
        assert store.purge(cache_module._now()) == 0
        assert store.purge(cache_module._now() + 61) == 1
