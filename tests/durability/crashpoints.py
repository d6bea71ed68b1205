"""Crash points, installed in a CHILD process only: production code carries no test hooks.

`install()` wraps a few methods of the real classes (accord's savers, the router, the agent
runner, the tool box, the approval node, the sample company's database). Every wrapped call appends one line to `log_path` (unbuffered, so the
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


def _in_transaction(owner: Any, attr: str) -> None:
    """Wrap ``owner.attr(handle, body)`` so that ``tx:commit`` is hit after a run's write
    transaction ran its statements and before it commits (a kill there rolls it back)."""
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(self: Any, handle: Any, body: Any) -> Any:
        if handle is None:  # not a run's write (a claim on SQLite, an index repair)
            return original(self, handle, body)

        def counted(cur: Any) -> Any:
            result = body(cur)
            hit("tx:commit")
            return result

        return original(self, handle, counted)

    setattr(owner, attr, wrapper)


def _instrument() -> None:
    from accord.agents.actions import ToolBox
    from accord.agents.runner import AgentRunner
    from accord.checkpoints.accord_saver import AccordSaver
    from accord.checkpoints.postgres import AccordPostgresSaver
    from accord.checkpoints.sqlite import AccordSqliteSaver
    from accord.graphs import builder
    from accord.graphs.agent_node import AgentNode
    from accord.graphs.approval import ApprovalNode
    from accord.graphs.router import Router
    from accord.graphs.support import db as support_db
    from accord.graphs.support import workflow as support

    # the engine's saver: LangGraph handing over a step's checkpoint and a task's writes (the
    # saver writes them now or with the next durable point), the claim that starts a run,
    # every write transaction, tool results recorded in the ledger, the run's end
    _around(AccordSaver, "aput", "put")
    _around(AccordSaver, "aput_writes", "writes")
    _around(AccordSaver, "begin_run", "claim")
    _around(AccordSaver, "end_run", "end")
    _around(AccordSaver, "ledger_record", "ledger")
    for saver in (AccordSqliteSaver, AccordPostgresSaver):
        _in_transaction(saver, "_transaction")
    _in_transaction(AccordPostgresSaver, "_final_transaction")
    # inside the nodes
    _around(Router, "decide", "route")
    _around(AgentRunner, "arun", lambda self, handoff, **kw: f"agent.{self.spec.id}")
    _around(ToolBox, "run", lambda self, tool, args, **kw: f"tool.{tool}")
    _around(ApprovalNode, "ask", "decision")
    # the side effects themselves (a SQLite commit each)
    _around(support_db.SupportDB, "refund", "refund")
    _around(support_db.SupportDB, "ticket", "ticket")

    # node entries: the router's closure, agents, approvals and the escalation node
    make_router = builder.router_node

    def router_node(name: str, *args: Any, **kwargs: Any) -> Any:
        route = make_router(name, *args, **kwargs)

        async def entered(state: Any) -> Any:
            hit(f"node.{name}")
            return await route(state)

        entered.__name__ = name
        return entered

    builder.router_node = router_node
    agent_call = AgentNode.__call__

    async def agent_entered(self: Any, state: Any) -> Any:
        hit(f"node.{self.name}")
        return await agent_call(self, state)

    AgentNode.__call__ = agent_entered
    approval_call = ApprovalNode.__call__

    async def approval_entered(self: Any, state: Any) -> Any:
        hit(f"node.{self.name}")
        return await approval_call(self, state)

    ApprovalNode.__call__ = approval_entered
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
