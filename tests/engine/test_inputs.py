"""Bad input is refused at the entry, on every path, before anything is saved.

Every entry point (``invoke``, ``ainvoke``, ``stream``, ``astream``) on every backend (memory,
SQLite, PostgreSQL): input that does not fit ``{"messages": [...]}`` raises ``InvalidInput``
and leaves no thread row, checkpoint or audit event; an oversize message raises
``GuardrailTripwireTriggered``, saves nothing but an ``input_refused`` audit event. A refusal on
an existing thread leaves it as it was. Requests in the shapes LangChain accepts go through.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from accord.checkpoints import open_saver
from accord.engine import AccordGraph, InvalidInput, ThreadIdMissing
from accord.errors import AccordError
from accord.graphs import Step, Workflow
from accord.graphs.router import Router
from accord.guardrails.base import GuardrailTripwireTriggered
from accord.records import AuditKind, ThreadStatus

PATHS = ["invoke", "ainvoke", "stream", "astream"]

BAD_INPUTS = {
    "messages_not_a_list": ({"messages": 42}, "'messages' must be a list of messages, got int"),
    "messages_a_string": ({"messages": "hello"}, "'messages' must be a list of messages, got str"),
    "content_not_text": ({"messages": [{"role": "user", "content": 42}]},
                         "messages[0].content must be text or a list of content blocks, got int"),
    "content_none": ({"messages": [{"role": "user", "content": None}]},
                     "messages[0].content must be text or a list of content blocks"),
    "unknown_key": ({"messages": [{"role": "user", "content": "hi"}], "audit": []},
                    "unknown key(s) 'audit'"),
    "state_keys_only": ({"tasks": {}, "pending": None}, "unknown key(s) 'pending', 'tasks'"),
    "empty_list": ({"messages": []}, "'messages' is empty"),
    "bare_string": ("hello", "input must be an object {'messages': [...]}, got str"),
    "bare_list": ([("user", "hello")], "input must be an object {'messages': [...]}, got list"),
    "no_role": ({"messages": [{"content": "hi"}]}, "messages[0] is not a message"),
    "unknown_role": ({"messages": [{"role": "wizard", "content": "hi"}]},
                     "messages[0] is not a message"),
}

LIMIT = 8000
"""``MaxInputLength``'s default."""


# backends -----------------------------------------------------------------------------------
def _as_url(conninfo: str) -> str:
    """psycopg's `key=value` conninfo as the postgresql:// URL accord opens."""
    info = conninfo_to_dict(conninfo)
    user = quote(info.pop("user", ""), safe="")
    password = info.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host, port, db = info.pop("host", "localhost"), info.pop("port", "5432"), info.pop("dbname", "")
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in info.items())
    return f"postgresql://{auth}{host}:{port}/{db}" + (f"?{query}" if query else "")


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgres"])
def saver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """accord's saver on a fresh database of each backend (shared by this module's tests;
    every test uses threads of its own)."""
    if request.param == "memory":
        url, schema = "memory://", None
    elif request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path_factory.mktemp('inputs')}/accord.db", None
    else:
        base = request.getfixturevalue("postgres_url")
        schema = f"accord_inputs_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        options = f"{conninfo_to_dict(base).get('options', '')} -csearch_path={schema}"
        url = _as_url(make_conninfo(base, options=options.strip()))
    try:
        with open_saver(url) as opened:
            yield opened
    finally:
        if schema is not None:
            with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def echo_workflow() -> Workflow:
    """router -> echo -> router -> END: echo answers with the request's text."""
    workflow = Workflow("inputs", router=Router(default="echo"), max_hops=10)

    def echo(state: dict[str, Any]) -> Step:
        last = [m for m in state["messages"] if isinstance(m, HumanMessage)][-1]
        return Step("router", {
            "tasks": {state["active_task"]: {"status": "completed", "result": "echoed"}},
            "messages": [AIMessage(f"echo: {last.text}", name="echo")],
        })

    return workflow.node("echo", echo).transitions({"router": ["echo", "END"], "echo": ["router"]})


@pytest.fixture(scope="module")
def graph(saver: Any) -> AccordGraph:
    return echo_workflow().compile(checkpointer=saver)


# entry points -------------------------------------------------------------------------------
def enter(graph: AccordGraph, path: str, value: Any, config: dict[str, Any]) -> Any:
    """Send ``value`` through one entry point; the final state (or the streamed chunks)."""
    if path == "invoke":
        return graph.invoke(value, config)
    if path == "stream":
        return list(graph.stream(value, config, stream_mode="values"))[-1]
    if path == "ainvoke":
        return asyncio.run(graph.ainvoke(value, config))

    async def collect() -> Any:
        return [chunk async for chunk in graph.astream(value, config, stream_mode="values")][-1]

    return asyncio.run(collect())


def new_config() -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}}


def stored(saver: Any, config: dict[str, Any]) -> tuple[Any, ...]:
    """Everything the database holds for a thread: index row, checkpoint ids, audit, latest."""
    thread = config["configurable"]["thread_id"]
    return (saver.threads.get(thread), saver.checkpoint_ids(thread),
            [(e.kind, e.id) for e in saver.audit_log(thread)], saver.get_tuple(config))


def nothing_stored(saver: Any, config: dict[str, Any]) -> None:
    assert stored(saver, config) == (None, [], [], None)


def finished_thread(graph: AccordGraph, saver: Any) -> dict[str, Any]:
    config = new_config()
    out = graph.invoke({"messages": [{"role": "user", "content": "first"}]}, config)
    assert out["messages"][-1].content == "echo: first"
    assert saver.threads.get(config["configurable"]["thread_id"]).status is ThreadStatus.DONE
    return config


# refused ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_input_outside_the_schema_is_refused_and_nothing_is_saved(
    graph: AccordGraph, saver: Any, path: str, case: str
) -> None:
    value, expected = BAD_INPUTS[case]
    config = new_config()
    with pytest.raises(InvalidInput) as refused:
        enter(graph, path, value, config)
    assert isinstance(refused.value, AccordError)
    assert expected in str(refused.value) and "\n" not in str(refused.value)
    nothing_stored(saver, config)


@pytest.mark.parametrize("path", PATHS)
def test_a_run_without_a_thread_on_a_graph_with_a_checkpointer_is_refused(
    graph: AccordGraph, saver: Any, path: str
) -> None:
    before = saver.threads.list()
    with pytest.raises(ThreadIdMissing) as refused:
        enter(graph, path, {"messages": [{"role": "user", "content": "hi"}]}, {})
    assert isinstance(refused.value, AccordError) and isinstance(refused.value, ValueError)
    assert "thread_id" in str(refused.value) and "\n" not in str(refused.value)
    assert saver.threads.list() == before


@pytest.mark.parametrize("path", PATHS)
def test_bad_input_on_an_existing_thread_leaves_it_as_it_was(
    graph: AccordGraph, saver: Any, path: str
) -> None:
    config = finished_thread(graph, saver)
    before = stored(saver, config)
    for value, _ in BAD_INPUTS.values():
        with pytest.raises(InvalidInput):
            enter(graph, path, value, config)
    assert stored(saver, config) == before
    assert [m.content for m in graph.get_state(config).values["messages"]] == ["first", "echo: first"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("content", [
    pytest.param("x" * (LIMIT + 1), id="text"),
    pytest.param([{"type": "text", "text": "x" * 5000}, {"type": "text", "text": "y" * 5000}],
                 id="content_blocks"),
])
def test_an_oversize_message_trips_the_guardrail_and_only_the_refusal_is_recorded(
    graph: AccordGraph, saver: Any, path: str, content: Any
) -> None:
    config = new_config()
    thread = config["configurable"]["thread_id"]
    size = len(content) if isinstance(content, str) else sum(len(b["text"]) for b in content)
    with pytest.raises(GuardrailTripwireTriggered) as tripped:
        enter(graph, path, {"messages": [{"role": "user", "content": content}]}, config)
    result = tripped.value.result
    assert (result.guardrail, result.tripwire_triggered) == ("max_input_length", True)
    assert result.details == {"length": size, "limit": LIMIT}
    assert f"message is {size} characters; the limit is {LIMIT}" in str(tripped.value)

    assert saver.threads.get(thread) is None
    assert saver.checkpoint_ids(thread) == [] and saver.get_tuple(config) is None
    [event] = saver.audit_log(thread)
    assert event.kind is AuditKind.INPUT_REFUSED
    assert event.details()["guardrail"] == "max_input_length"
    assert event.details()["details"] == {"length": size, "limit": LIMIT}


@pytest.mark.parametrize("path", PATHS)
def test_an_oversize_message_on_an_existing_thread_changes_nothing_but_the_audit_log(
    graph: AccordGraph, saver: Any, path: str
) -> None:
    config = finished_thread(graph, saver)
    thread = config["configurable"]["thread_id"]
    record, checkpoints, audit, latest = stored(saver, config)
    with pytest.raises(GuardrailTripwireTriggered):
        enter(graph, path, {"messages": [{"role": "user", "content": "x" * 9000}]}, config)
    after = saver.threads.get(thread)
    assert (after.status, after.epoch, after.head) == (record.status, record.epoch, record.head)
    assert saver.checkpoint_ids(thread) == checkpoints
    assert saver.get_tuple(config).checkpoint["id"] == latest.checkpoint["id"]
    log = saver.audit_log(thread)
    assert [(e.kind, e.id) for e in log[:-1]] == audit and log[-1].kind is AuditKind.INPUT_REFUSED


@pytest.mark.parametrize("role", ["user", "system"])
def test_an_oversize_message_that_is_not_the_last_one_is_refused_too(
    graph: AccordGraph, saver: Any, role: str
) -> None:
    config = new_config()
    request = {"messages": [{"role": role, "content": "x" * 9000},
                            {"role": "user", "content": "short"}]}
    with pytest.raises(GuardrailTripwireTriggered):
        graph.invoke(request, config)
    assert saver.checkpoint_ids(config["configurable"]["thread_id"]) == []


# accepted -----------------------------------------------------------------------------------
ACCEPTED = {
    "dict": {"role": "user", "content": "hello there"},
    "human_message": HumanMessage("hello there"),
    "tuple": ("user", "hello there"),
    "content_blocks": {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
    "human_with_blocks": HumanMessage([{"type": "text", "text": "hello"},
                                       {"type": "text", "text": " there"}]),
    "exactly_the_limit": {"role": "user", "content": "x" * LIMIT},
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", sorted(ACCEPTED))
def test_requests_in_every_accepted_shape_run_to_the_end(
    graph: AccordGraph, saver: Any, path: str, shape: str
) -> None:
    config = new_config()
    thread = config["configurable"]["thread_id"]
    message = ACCEPTED[shape]
    out = enter(graph, path, {"messages": [message]}, config)
    text = "x" * LIMIT if shape == "exactly_the_limit" else "hello there"
    assert out["messages"][-1].content == f"echo: {text}"
    [human] = [m for m in out["messages"] if isinstance(m, HumanMessage)]
    assert human.text == text and human.id
    record = saver.threads.get(thread)
    assert (record.status, record.epoch, record.input) == (ThreadStatus.DONE, 1, None)
    assert saver.checkpoint_ids(thread)
    assert not [e for e in saver.audit_log(thread) if e.kind is AuditKind.INPUT_REFUSED]
    assert [m.content for m in graph.get_state(config).values["messages"]][-1] == f"echo: {text}"
