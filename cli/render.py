"""How a run looks in the terminal: one line per routing decision, tool call and transition."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from accord.records import AuditEvent, AuditKind

ARROW = "→"


def _short(value: Any, limit: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_line(event: dict[str, Any]) -> str | None:
    try:
        kind = AuditKind(event.get("kind"))
    except ValueError:
        return None
    node = event.get("node", "")
    if kind is AuditKind.ROUTE:
        conf = event.get("confidence")
        conf_text = f" {conf:.2f}" if isinstance(conf, int | float) else ""
        return (f"[bold cyan]route[/] {node} {ARROW} [bold]{event['target']}[/] "
                f"[dim]\\[{event['tier']}{conf_text}] {event.get('reason', '')}[/]")
    if kind is AuditKind.TOOL_CALL:
        args = f"({_short(event['args'], 60)})" if "args" in event else ""
        return f"[yellow]tool[/]  {event.get('agent', node)} {event['tool']}{args} {ARROW} {_short(event.get('result'))}"
    if kind is AuditKind.TRANSITION:
        return f"[dim]step  {node} {ARROW} {event['target']} (hop {event.get('hop')})[/]"
    if kind is AuditKind.HUMAN_DECISION:
        what = f" {event['tool']}" if event.get("tool") else ""
        return (f"[magenta]human[/] {event['decision']}{what} by {event.get('by')} "
                f"{event.get('reason') or ''}").rstrip()
    if kind is AuditKind.FALLBACK:
        return f"[red]fallback[/] {event['agent']} failed ({_short(event['error'])}); {event['fallback']} takes over"
    if kind is AuditKind.AGENT_FAILED:
        return f"[red]failed[/] {event['agent']}: {_short(event['error'])}"
    if kind in (AuditKind.ILLEGAL_TRANSITION, AuditKind.WRITE_REJECTED, AuditKind.GUARDRAIL,
                AuditKind.ESCALATED, AuditKind.INPUT_REFUSED, AuditKind.RUN_FAILED):
        details = {k: v for k, v in event.items() if k not in ("kind", "at")}
        return f"[red]{kind}[/] {_short(details, 120)}"
    return None


class LiveView:
    """Prints a run's events as they stream in (``stream_mode="updates"``)."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled

    def __call__(self, node: str, update: Any) -> None:
        if not self.enabled or not isinstance(update, dict):
            return
        events = update.get("audit") or []
        for event in getattr(events, "value", events) or []:  # a new request overwrites it
            line = event_line(event)
            if line:
                self.console.print(line, highlight=False)
        for message in update.get("messages") or []:
            if isinstance(message, AIMessage) and message.text:
                self.console.print(f"[green]{message.name or node}[/]: {message.text}", highlight=False)

    def approval(self, payload: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.console.print(approval_panel(payload))


def actions_of(payload: dict[str, Any] | None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """An approval's held actions, each with its review config (LangChain's HITL shape; a
    payload of one flat action, from before, reads as one)."""
    payload = payload or {}
    requests = payload.get("action_requests")
    if requests is None and payload.get("action"):
        requests = [{"name": payload["action"], "args": payload.get("args") or {},
                     "description": payload.get("reason", "")}]
    configs = {c.get("action_name"): c for c in payload.get("review_configs") or []}
    return [(r, configs.get(r.get("name"), {})) for r in requests or []]


def pending_line(payload: dict[str, Any] | None) -> str:
    """One line naming what an approval waits on, for tables."""
    return "; ".join(f"{r.get('name')} {json.dumps(r.get('args'), default=str)}"
                     for r, _ in actions_of(payload))


def approval_panel(payload: dict[str, Any]) -> Panel:
    """An approval request: who asks, then each held action with the decisions it allows."""
    held = actions_of(payload)
    lines = [f"agent:  {payload.get('agent')}", f"risk:   {payload.get('risk')}",
             f"reason: {payload.get('reason')}"]
    for i, (request, config) in enumerate(held, 1):
        number = f"{i}. " if len(held) > 1 else ""
        lines.append(f"{number}[bold]{request.get('name')}[/]({_short(request.get('args'), 200)})")
        if request.get("description") and request["description"] != payload.get("reason"):
            lines.append(f"   {request['description']}")
        if config.get("allowed_decisions"):
            lines.append(f"   [dim]decisions: {', '.join(config['allowed_decisions'])}[/]")
    if payload.get("error"):
        lines.append(f"[red]last answer rejected: {payload['error']}[/]")
    title = f"approval needed at {payload.get('approval_node')}"
    if len(held) > 1:
        title += f" ({len(held)} actions)"
    return Panel("\n".join(lines), title=title)


def audit_table(events: list[AuditEvent]) -> Table:
    """A thread's audit log as a table (oldest first)."""
    table = Table("at", "kind", "node", "detail", title="audit trail")
    for event in events:
        detail = {k: v for k, v in event.details().items()
                  if k not in ("node", "task_id") and v is not None}
        if event.kind is AuditKind.TASK_FINISHED:
            task = detail.pop("task", {}) or {}
            detail = {"status": task.get("status"), "result": task.get("result")}
        table.add_row(event.at[11:23], event.kind.value, event.node or "",
                      json.dumps(detail, default=str)[:100])
    return table
