"""LangSmith bookkeeping inline when nothing is traced.

langchain wraps every ``wrap_model_call``/``wrap_tool_call`` hook of an agent's middleware
(accord's approval gate and model retry among them) in LangSmith's ``traceable``. Its async
wrapper sets up and closes its run in a worker thread, even when tracing is off: two thread
hops for every model call and every tool call of an LLM agent, which cost more CPU than the
hooks themselves.

With tracing off that bookkeeping is a few dictionary reads, so accord runs it inline on the
event loop, through LangSmith's own override hook (``langsmith.set_runtime_overrides``). When
tracing is on (by environment, context or an enclosing run) the call goes to LangSmith's own
implementation unchanged, and an override the application installed itself is left alone.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

_installed = False


async def inline_when_untraced(
    default: Callable[..., Awaitable[Any]], ctx: contextvars.Context, func: Callable[..., Any],
    /, *args: Any, **kwargs: Any,
) -> Any:
    """LangSmith's ``aio_to_thread``: inline when nothing is traced, LangSmith's own otherwise."""
    from langsmith import run_helpers, utils

    if utils.tracing_is_enabled() or run_helpers.get_current_run_tree() is not None:
        return await default(ctx, func, *args, **kwargs)
    return ctx.run(func, *args, **kwargs)


def install() -> None:
    """Install the override once per process, unless the application has one of its own."""
    global _installed
    if _installed:
        return
    _installed = True
    try:
        import langsmith
        from langsmith._runtime_overrides import get_runtime_overrides
    except ImportError:  # an older LangSmith without the hook: its default stays
        return
    if get_runtime_overrides().aio_to_thread is None:
        langsmith.set_runtime_overrides(aio_to_thread=inline_when_untraced)
