"""Crash points, installed in a CHILD process only: production code carries no test hooks.

`install()` wraps a few methods of the real classes (the checkpoint savers,
the thread index, the router, the agent runner, the tool box, the approval node, the sample
company's database). Every wrapped call appends one line to `log_path` (unbuffered, so the
line survives a SIGKILL) and counts as one *hit* of a named point, for example
``refund:after``. When the point named by ``crash_at`` (``"refund:after@1"``: the first hit)
is reached after `arm(crash_at, log_path)`, the process sends itself SIGKILL: no `finally`, no flush, no clean shutdown.

This file is imported by `zygote.py` (a fork server); pytest never imports it.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

_hits: Counter[str] = Counter()
_target: tuple[str, int] | None = None
_log_fd: int | None = None


def parse(crash_at: str | None) -> tuple[str, int] | None:
    """``"point@n"`` -> ``("point", n)``; ``None`` or ``""`` -> no crash."""
    if not crash_at:
        return None
    point, _, nth = crash_at.partition("@")
    return point, int(nth or 1)


def hit(point: str) -> None:
    """Record one hit of `point`; die here if it is the chosen one."""
    _hits[point] += 1
    if _log_fd is not None:
        os.write(_log_fd, f"{os.getpid()} {point} {_hits[point]}\n".encode())
    if _target is not None and _target == (point, _hits[point]):
        if _log_fd is not None:
            os.write(_log_fd, f"{os.getpid()} KILLED {point} {_hits[point]}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)


def _around(owner: Any, attr: str, name: Callable[..., str] | str) -> None:
    """Wrap ``owner.attr`` so each call hits ``<name>:before`` and ``<name>:after``."""
    original = getattr(owner, attr)
    label = name if callable(name) else (lambda *a, **k: name)

    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            point = label(*args, **kwargs)
            hit(f"{point}:before")
            result = await original(*args, **kwargs)
            hit(f"{point}:after")
            return result

        setattr(owner, attr, awrapper)
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        point = label(*args, **kwargs)
        hit(f"{point}:before")
        result = original(*args, **kwargs)
        hit(f"{point}:after")
        return result

    setattr(owner, attr, wrapper)


def _instrument() -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from accord.agents.actions import ToolBox
    from accord.agents.runner import AgentRunner
    from accord.checkpoints import threads
    from accord.checkpoints.sqlite import PruningAsyncSqliteSaver
    from accord.graphs import builder, support
    from accord.graphs.nodes import ApprovalNode
    from accord.graphs.router import Router
    from accord.graphs.support import SupportDB

    # checkpoint writes: a step's task writes, then the step's checkpoint
    for saver in (PruningAsyncSqliteSaver, AsyncPostgresSaver):
        _around(saver, "aput", "put")
        _around(saver, "aput_writes", "writes")
    # the thread index the CLI keeps next to the checkpoints
    for index in (threads.SqliteThreadIndex, threads.PostgresThreadIndex):
        _around(index, "upsert", lambda self, thread_id, **kw: f"index.{kw.get('status')}")
    # inside the nodes
    _around(Router, "adecide", "route")
    _around(AgentRunner, "arun", lambda self, handoff: f"agent.{self.spec.id}")
    _around(ToolBox, "run", lambda self, tool, args, **kw: f"tool.{tool}")
    _around(ApprovalNode, "ask", "decision")
    # the side effects themselves (a SQLite commit each)
    _around(SupportDB, "refund", "refund")
    _around(SupportDB, "ticket", "ticket")

    # node entries: the router's closures, agents, approvals and the escalation node
    make_router = builder.router_node

    def router_node(name: str, *args: Any, **kwargs: Any) -> Any:
        run, arun = make_router(name, *args, **kwargs)

        async def entered(state: Any) -> Any:
            hit(f"node.{name}")
            return await arun(state)

        return run, entered

    builder.router_node = router_node
    agent_arun = builder.AgentNode.arun

    async def agent_entered(self: Any, state: Any) -> Any:
        hit(f"node.{self.name}")
        return await agent_arun(self, state)

    builder.AgentNode.arun = agent_entered
    approval_run = ApprovalNode.run

    def approval_entered(self: Any, state: Any) -> Any:
        hit(f"node.{self.name}")
        return approval_run(self, state)

    ApprovalNode.run = approval_entered
    make_triage = support.human_triage

    def human_triage(db: Any) -> Any:
        triage = make_triage(db)

        def entered(state: Any) -> Any:
            hit(f"node.{support.HUMAN_TRIAGE}")
            return triage(state)

        return entered

    support.human_triage = human_triage


_instrumented = False


def install() -> None:
    """Wrap the methods (once per process; forks inherit the wrapping, disarmed)."""
    global _instrumented
    if not _instrumented:
        _instrument()
        _instrumented = True


def arm(crash_at: str | None, log_path: str | None) -> None:
    """Start counting afresh; SIGKILL this process at `crash_at` (``point@n``) if given."""
    global _target, _log_fd
    install()
    _hits.clear()
    _target = parse(crash_at)
    _log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_path else None
