"""A thread's replay: its timeline from the audit log and the graph drawn with the visited
transitions highlighted."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

from langgraph.graph import END, START
from starlette.requests import Request
from starlette.responses import Response

from accord.checkpoints import ThreadNotFound
from accord.engine.reassign import REASSIGNABLE, targets
from accord.records import AuditEvent, AuditKind, ThreadStatus
from accord.server.auth import Principal, Role
from accord.server.console.web import Console, page

_EDGE = re.compile(r"^\s*(\S+)\s+(?:-\.->|-->|==>)\s+(\S+?);?\s*$")
VISITED_STYLE = "stroke:#d1242f,stroke-width:3px"


def visited_edges(events: list[AuditEvent]) -> set[tuple[str, str]]:
    """The transitions a thread took: its ``transition`` events (and the entry edge)."""
    edges = {(e.node or "", str(e.details().get("target"))) for e in events
             if e.kind is AuditKind.TRANSITION}
    routed = [e for e in events if e.kind in (AuditKind.ROUTE, AuditKind.TRANSITION)]
    if routed and routed[0].node:
        edges.add((START, routed[0].node))
    return edges


def highlighted(mermaid: str, edges: set[tuple[str, str]]) -> str:
    """``mermaid`` with a ``linkStyle`` for each visited edge and the visited nodes classed."""
    lines = mermaid.rstrip().splitlines()
    styles, nodes, index = [], set(), 0
    for line in lines:
        found = _EDGE.match(line)
        if not found:
            continue
        if (found[1], found[2]) in edges:
            styles.append(f"\tlinkStyle {index} {VISITED_STYLE}")
            nodes.update((found[1], found[2]))
        index += 1
    marks = [f"\tclass {node} visited" for node in sorted(nodes) if node not in (START, END)]
    return "\n".join([*lines, *styles, "\tclassDef visited fill:#ffd8d3,stroke:#d1242f",
                      *marks]) + "\n"


def _ms(start: str, end: str) -> int | None:
    try:
        return int((datetime.fromisoformat(end) - datetime.fromisoformat(start))
                   .total_seconds() * 1000)
    except ValueError:
        return None


def _summary(event: AuditEvent) -> str:
    details = {k: v for k, v in event.details().items()
               if v is not None and k not in ("node", "agent", "task_id")}
    return ", ".join(f"{k}={v}" for k, v in details.items())[:400]


def timeline(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """One row per audit event, with the time since the previous one."""
    rows, previous = [], None
    for event in events:
        rows.append({"at": event.at, "kind": event.kind.value, "node": event.node,
                     "agent": event.agent,
                     "after_ms": _ms(previous, event.at) if previous else None,
                     "detail": _summary(event),
                     "problem": event.kind in (AuditKind.RUN_FAILED, AuditKind.AGENT_FAILED,
                                               AuditKind.ILLEGAL_TRANSITION,
                                               AuditKind.ACTION_FAILED, AuditKind.GUARDRAIL)})
        previous = event.at
    return rows


async def thread_page(request: Request, console: Console, who: Principal) -> Response:
    thread_id = request.path_params["thread_id"]
    session = await console.session()
    found = await session.record(thread_id)
    await console.warm(found.graph if found is not None else None)
    try:
        outcome, _snapshot, history, audit = await session.show(thread_id)
    except ThreadNotFound as exc:
        return page(request, "missing.html", 404, message=str(exc), who=who.user)
    graph = await asyncio.to_thread(session.graph, outcome.graph)
    drawn = await asyncio.to_thread(lambda: graph.get_graph().draw_mermaid())
    drawing = highlighted(drawn, visited_edges(audit))
    feedback = [f for f in await _feedback(console) if f["thread_id"] == thread_id]
    status = ThreadStatus(outcome.status)
    task = (await _active_task(graph, thread_id)) if status in REASSIGNABLE else None
    choices = [t for t in targets(session.workflow(outcome.graph))
               if task is None or t != task.get("agent")]
    return page(request, "thread.html", outcome=outcome, rows=timeline(audit),
                mermaid=drawing, checkpoints=steps(history), who=who.user,
                csrf=request.state.csrf, feedback=feedback,
                admin=who.user.role >= Role.ADMIN, approver=who.user.role >= Role.APPROVER,
                cancellable=status in (ThreadStatus.INTERRUPTED, ThreadStatus.RUNNING),
                task=task, targets=choices if task is not None else [])


def steps(history: list[Any]) -> list[dict[str, Any]]:
    """The checkpoints a fork may start from, oldest first."""
    rows = []
    for snapshot in reversed(history):
        metadata = snapshot.metadata or {}
        rows.append({"checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
                     "step": metadata.get("step"), "source": metadata.get("source"),
                     "next": list(snapshot.next or ()),
                     "at": (snapshot.created_at or "")[11:23]})
    return rows


async def _active_task(graph: Any, thread_id: str) -> dict[str, Any] | None:
    values = (await graph.aget_state({"configurable": {"thread_id": thread_id}})).values or {}
    task_id = values.get("active_task")
    return (values.get("tasks") or {}).get(task_id) if task_id else None


async def _feedback(console: Console) -> list[dict[str, Any]]:
    return await asyncio.to_thread(console.store.feedback)


__all__ = ["highlighted", "steps", "thread_page", "timeline", "visited_edges"]
