"""An LLM agent's inner loop under every durability mode.

accord runs each LLM agent as a checkpointer-less ``create_agent`` graph inside a node of the
workflow, and the engine runs the workflow at ``durability="sync"``. LangGraph 1.2 fails such an
inner graph when it inherits ``sync`` from its parent: the first half of this file reproduces
that with plain LangGraph (no accord), and shows the workaround accord uses in
``agents/runner.py`` (the inner run gets a durability of its own). The second half proves
accord's LLM agents complete under each durability a caller may pass, on ``invoke`` and
``ainvoke``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypedDict

import pytest
from langgraph._internal._constants import CONFIG_KEY_DURABILITY
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from accord.agents import ModelResolver
from accord.checkpoints import open_saver
from accord.graphs.support import SupportDB, build_support
from accord.records import AuditKind, ThreadStatus
from accord.testing import ScriptedChatModel, StructuredReply

DURABILITIES = ("sync", "async", "exit")
OWN_DURABILITY = {"configurable": {CONFIG_KEY_DURABILITY: "exit"}}
"""What accord's runner passes to the inner agent graph."""


class Count(TypedDict):
    n: int


def inner_graph() -> Any:
    """A one-node graph compiled without a checkpointer (as ``create_agent(checkpointer=False)``)."""
    builder = StateGraph(Count)
    builder.add_node("step", lambda state: {"n": state["n"] + 1})
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile(checkpointer=False)


def parent_graph(inner: Any, inner_config: dict[str, Any] | None, *, use_async: bool) -> Any:
    """A checkpointed parent whose node runs ``inner`` (``invoke`` or ``await ainvoke``)."""

    def call(state: Count) -> Count:
        return inner.invoke(state, inner_config)

    async def acall(state: Count) -> Count:
        return await inner.ainvoke(state, inner_config)

    builder = StateGraph(Count)
    builder.add_node("call", acall if use_async else call)
    builder.add_edge(START, "call")
    builder.add_edge("call", END)
    return builder.compile(checkpointer=InMemorySaver())


def run_parent(parent: Any, durability: str, *, use_async: bool) -> Count:
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}}
    if use_async:
        return asyncio.run(parent.ainvoke({"n": 0}, config, durability=durability))
    return parent.invoke({"n": 0}, config, durability=durability)


# -- LangGraph on its own ---------------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync-parent", "async-parent"])
def test_langgraph_fails_an_inner_graph_that_inherits_sync_durability(use_async):
    """If this starts failing, LangGraph fixed the bug: a checkpointer-less inner graph under a
    parent run at ``durability="sync"`` no longer trips over ``_put_checkpoint_fut``. The
    workaround in ``agents/runner.py`` (``CONFIG_KEY_DURABILITY: "exit"`` for the agent's inner
    run) can then go, with this test."""
    parent = parent_graph(inner_graph(), None, use_async=use_async)
    with pytest.raises(AttributeError, match="_put_checkpoint_fut"):
        run_parent(parent, "sync", use_async=use_async)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync-parent", "async-parent"])
@pytest.mark.parametrize("durability", DURABILITIES)
def test_an_inner_graph_with_its_own_durability_runs_under_any_parent(durability, use_async):
    parent = parent_graph(inner_graph(), OWN_DURABILITY, use_async=use_async)
    assert run_parent(parent, durability, use_async=use_async) == {"n": 1}


@pytest.mark.parametrize("use_async", [False, True], ids=["sync-parent", "async-parent"])
@pytest.mark.parametrize("durability", ["async", "exit"])
def test_only_sync_durability_breaks_the_inherited_case(durability, use_async):
    """The failure above is specific to ``sync``: the other modes run the inner graph as is."""
    parent = parent_graph(inner_graph(), None, use_async=use_async)
    assert run_parent(parent, durability, use_async=use_async) == {"n": 1}


# -- accord's LLM agents ----------------------------------------------------------------------

# Matches no routing rule: the router's LLM tier classifies it, then the tech LLM agent answers.
REQUEST = "the desktop app will not start"
REPLY = "Clear the cache, then restart the app."


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
@pytest.mark.parametrize("durability", DURABILITIES)
def test_llm_agents_complete_under_every_durability(durability, entry, tmp_path):
    model = ScriptedChatModel([
        StructuredReply({"target": "tech", "confidence": 0.9, "reason": "the app fails"}),
        REPLY,
    ])
    thread = f"t-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread}}
    payload = {"messages": [{"role": "user", "content": REQUEST}]}
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        workflow = build_support(db=SupportDB(tmp_path / "support.db"), use_llm=True,
                                 models=ModelResolver(models={"*": model}))
        graph = workflow.compile(checkpointer=saver)
        if entry == "invoke":
            out = graph.invoke(payload, config, durability=durability)
        else:
            out = asyncio.run(graph.ainvoke(payload, config, durability=durability))
        record = saver.threads.get(thread)
        audit = saver.audit_log(thread)
        values = graph.get_state(config).values

    assert model.calls == 2  # the classification and the agent's answer
    assert [e.details() for e in audit if e.kind is AuditKind.FALLBACK] == []
    assert [e.details() for e in audit if e.kind is AuditKind.AGENT_FAILED] == []
    assert out["messages"][-1].content == REPLY
    assert (out["outputs"]["tech"]["agent"], out["outputs"]["tech"]["kind"]) == ("tech", "llm")
    route = next(e.details() for e in audit if e.kind is AuditKind.ROUTE)
    assert (route["tier"], route["target"]) == ("llm", "tech")
    assert record is not None and record.status is ThreadStatus.DONE
    assert values["messages"][-1].content == REPLY  # saved, not only returned
