"""LangSmith's bookkeeping for traced middleware hooks runs inline when nothing is traced.

langchain wraps every agent middleware hook (accord's approval gate and model retry) in
LangSmith's ``traceable``, whose async wrapper hops to a worker thread twice per call even with
tracing off. The engine installs an override that keeps that work on the event loop when
nothing is traced, and hands it to LangSmith's own implementation when something is.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading

import langsmith
import pytest
from langsmith._runtime_overrides import get_runtime_overrides

from accord.engine import untraced


def _where(ctx_value: contextvars.ContextVar[str]) -> tuple[int, str]:
    return threading.get_ident(), ctx_value.get()


def _call(**tracing: bool) -> tuple[int, int, str]:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("v", default="unset")

    async def go() -> tuple[int, int, str]:
        var.set("seen")
        defaults: list[str] = []

        async def default(ctx, func, *args):  # LangSmith's own: a worker thread
            defaults.append("default")
            return await asyncio.get_running_loop().run_in_executor(None, ctx.run, func, *args)

        with langsmith.tracing_context(**tracing):
            ident, value = await untraced.inline_when_untraced(
                default, contextvars.copy_context(), _where, var)
        return threading.get_ident(), ident, value if not defaults else f"{value}/default"

    return asyncio.run(go())


def test_untraced_bookkeeping_stays_on_the_loop_thread_in_the_callers_context():
    loop_thread, ran_on, value = _call(enabled=False)
    assert ran_on == loop_thread and value == "seen"


def test_traced_bookkeeping_goes_to_langsmiths_own_implementation():
    loop_thread, ran_on, value = _call(enabled=True)
    assert ran_on != loop_thread and value == "seen/default"


def test_the_engine_installs_it_unless_the_application_has_its_own(monkeypatch):
    from accord.checkpoints import open_saver
    from accord.graphs import Router, Step, Workflow

    mine = get_runtime_overrides().aio_to_thread
    monkeypatch.setattr(untraced, "_installed", False)
    langsmith.set_runtime_overrides()  # none installed
    try:
        workflow = Workflow("t", router=Router(default="a"))
        workflow.node("a", lambda s: Step("END")).transitions({"router": ["a", "END"], "a": ["END"]})
        with open_saver("memory://") as saver:
            workflow.compile(checkpointer=saver).invoke(
                {"messages": [{"role": "user", "content": "go"}]},
                {"configurable": {"thread_id": "u1"}})
        assert get_runtime_overrides().aio_to_thread is untraced.inline_when_untraced

        async def theirs(default, ctx, func, *args, **kwargs):
            return await default(ctx, func, *args, **kwargs)

        langsmith.set_runtime_overrides(aio_to_thread=theirs)
        monkeypatch.setattr(untraced, "_installed", False)
        untraced.install()
        assert get_runtime_overrides().aio_to_thread is theirs
    finally:
        langsmith.set_runtime_overrides(aio_to_thread=mine)


@pytest.fixture(autouse=True)
def _no_tracing_env(monkeypatch):
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING_V2"):
        monkeypatch.delenv(name, raising=False)
