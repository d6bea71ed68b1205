"""Reassigning a thread's task to another node the router may hand it to.

A thread that waits (an approval, an escalation) or failed can have its active task moved to
another declared node: the move is written as the router's step (``update_state`` with
``as_node`` set to the router and ``Command(goto=target)``), so the transition table decides
what is allowed, the task record names its new agent, and the audit log carries a ``route``
event of tier ``override`` with who moved it and why, followed by the ``transition``. A pending
approval is dropped with the move (its action never runs). The target gets a fresh handoff
envelope when the thread continues.

The target must be one of the router's declared successors other than an approval node or
``END``; anything else is refused with :class:`UndeclaredTarget` before anything is written.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END
from langgraph.types import Command

from accord.checkpoints import ThreadNotFound
from accord.errors import AccordError
from accord.records import AuditKind, TaskStatus, ThreadStatus, audit_event, utcnow
from accord.resilience.envelope import REDELIVER_KEY

REASSIGNABLE = frozenset({ThreadStatus.INTERRUPTED, ThreadStatus.FAILED})
"""Statuses a reassignment applies to."""


class NotReassignable(AccordError):
    """The thread is running or finished, or has no active task to move."""


class UndeclaredTarget(AccordError):
    """The target is not a node the router may hand a task to."""


def targets(workflow: Any) -> list[str]:
    """The nodes a task of ``workflow`` may be reassigned to: the router's successors in the
    transition table, less approval nodes and ``END``."""
    kinds = workflow.node_kinds()
    return [t for t in workflow.table.targets(workflow.router_name)
            if t not in (END, "END") and kinds.get(t) in ("agent", "node")]


def check_target(workflow: Any, target: str, current: str | None) -> None:
    allowed = targets(workflow)
    if target not in allowed:
        what = "is not a node of the graph" if target not in workflow.node_kinds() else (
            f"is not a node the {workflow.router_name} may hand a task to")
        raise UndeclaredTarget(f"{target!r} {what}; choose one of {', '.join(allowed)}")
    if target == current:
        raise UndeclaredTarget(f"the task is already assigned to {target!r}")


async def reassign(session: Any, thread_id: str, target: str, *, by: str | None,
                   reason: str) -> dict[str, Any]:
    """Move the thread's active task to ``target``; returns the ``configurable`` that the run
    continuing the thread needs (the redelivery of the task to its new agent).

    Raises :class:`ThreadNotFound`, :class:`NotReassignable` (409) or
    :class:`UndeclaredTarget` (400); the thread is unchanged then.
    """
    record = await session.record(thread_id)
    if record is None:
        raise ThreadNotFound(f"unknown thread {thread_id!r}")
    if record.status not in REASSIGNABLE:
        raise NotReassignable(f"thread {thread_id!r} is {record.status.value}; only a waiting "
                              "or failed thread's task can be reassigned")
    name = await session.graph_of(thread_id, record)
    workflow, graph = session.workflow(name), session.graph(name)
    config = {"configurable": {"thread_id": thread_id}}
    values = (await graph.aget_state(config)).values or {}
    task_id = values.get("active_task")
    task = (values.get("tasks") or {}).get(task_id) if task_id else None
    if not task:
        raise NotReassignable(f"thread {thread_id!r} has no active task to reassign")
    current = task.get("agent")
    check_target(workflow, target, current)
    router = workflow.router_name
    update = {
        "tasks": {task_id: {"agent": target, "status": TaskStatus.IN_PROGRESS.value,
                            "handoff_to": None, "updated_at": utcnow()}},
        "pending": None,
        "audit": [
            audit_event(AuditKind.ROUTE, node=router, task_id=task_id, tier="override",
                        target=target, reason=reason, confidence=None, by=by, previous=current),
            audit_event(AuditKind.TRANSITION, node=router, target=target,
                        hop=int(values.get("hops") or 0) + 1),
        ],
    }
    await graph.aupdate_state(config, Command(goto=target, update=update), as_node=router)
    return {REDELIVER_KEY: {"task_id": task_id, "recipient": target}}


__all__ = ["NotReassignable", "REASSIGNABLE", "UndeclaredTarget", "check_target", "reassign",
           "targets"]
