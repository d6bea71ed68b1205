"""The approval inbox: every thread waiting for a person, and the answers given from it.

An answer goes through the engine's resume path (``Session.resume``) with the signed-in user as
the decider. The engine lets one writer at a time hold a thread and refuses a decision on a
thread that no longer waits, so of two reviewers answering at once exactly one wins; the other
is shown who decided, from the thread's ``human_decision`` audit event.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accord.checkpoints import ThreadRecord
from accord.errors import AccordError
from accord.records import AuditKind, ThreadStatus
from accord.server.auth import Principal
from accord.server.console.web import Console, page

logger = logging.getLogger(__name__)

SETTLE_SECONDS = 30.0
"""How long a refused reviewer's page waits for the winning run to record its decision."""
DECISIONS = ("approve", "edit", "reject", "respond")


def fingerprint(pending: Any) -> str:
    """Which approval a form answers: a digest of the pending payload."""
    text = json.dumps(pending, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _age(record: ThreadRecord) -> str:
    seconds = int((datetime.now(UTC) - record.updated_at).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def _fields(schema: dict[str, Any] | None, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The edit form's fields: one per property of the tool's ``args_schema``."""
    props = (schema or {}).get("properties") or {name: {} for name in args}
    fields = []
    for name, spec in props.items():
        kind = spec.get("type") or "string"
        value = args.get(name, spec.get("default", ""))
        shown = value if isinstance(value, str) else json.dumps(value)
        fields.append({"name": name, "type": kind, "value": shown,
                       "required": name in ((schema or {}).get("required") or [])})
    return fields


def item(record: ThreadRecord) -> dict[str, Any] | None:
    """One inbox row from an interrupted thread's pending approval (HITL shape)."""
    pending = record.pending if isinstance(record.pending, dict) else None
    if not pending or not pending.get("action_requests"):
        return None
    configs = pending.get("review_configs") or []
    actions = []
    for index, request in enumerate(pending["action_requests"]):
        config = configs[index] if index < len(configs) else {}
        actions.append({"name": request.get("name"), "args": request.get("args") or {},
                        "description": request.get("description"),
                        "allowed": config.get("allowed_decisions") or list(DECISIONS),
                        "fields": _fields(config.get("args_schema"), request.get("args") or {})})
    return {"thread_id": record.thread_id, "graph": record.graph, "age": _age(record),
            "agent": pending.get("agent"), "risk": pending.get("risk"),
            "reason": pending.get("reason"), "error": pending.get("error"),
            "actions": actions, "fingerprint": fingerprint(pending)}


async def pending_items(console: Console) -> list[dict[str, Any]]:
    session = await console.session()
    saver = session.saver
    records = await saver._offload(saver.threads.list, status=ThreadStatus.INTERRUPTED)
    return [row for row in map(item, records) if row is not None]


async def inbox(request: Request, console: Console, who: Principal) -> Response:
    """Every pending approval; ``/console/inbox/{thread_id}`` (a notification's link) shows
    that thread's alone."""
    items = await pending_items(console)
    thread_id = request.path_params.get("thread_id")
    if thread_id is not None:
        items = [item for item in items if item.get("thread_id") == thread_id]
    return page(request, "inbox.html", items=items, who=who.user, csrf=request.state.csrf)


def _value(text: str, kind: str) -> Any:
    if kind == "string":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def decisions_from(form: dict[str, str], row: dict[str, Any]) -> list[dict[str, Any]]:
    """LangChain decisions (one per held action) from the inbox form."""
    kind = form.get("decision", "")
    if kind not in DECISIONS:
        raise ValueError(f"unknown decision {kind!r}")
    out = []
    for index, action in enumerate(row["actions"]):
        if kind == "approve":
            out.append({"type": "approve"})
        elif kind == "reject":
            out.append({"type": "reject", "message": form.get("message") or "rejected"})
        elif kind == "respond":
            out.append({"type": "respond", "message": form.get("message", "")})
        else:
            args = {f["name"]: _value(form[f"a{index}.{f['name']}"], f["type"])
                    for f in action["fields"] if f"a{index}.{f['name']}" in form}
            out.append({"type": "edit",
                        "edited_action": {"name": action["name"], "args": {**action["args"],
                                                                            **args}}})
    return out


async def decided_by(console: Console, thread_id: str) -> str | None:
    """Who answered the thread's latest approval, from its audit log."""
    session = await console.session()
    events = await session.saver._offload(session.saver.audit_log, thread_id)
    for event in reversed(events):
        if event.kind is AuditKind.HUMAN_DECISION:
            return event.details().get("by")
    return None


async def winner(console: Console, thread_id: str, answered: str,
                 wait: float = SETTLE_SECONDS) -> str | None:
    """Who answered the approval ``answered`` (a fingerprint), once the winning run has moved
    the thread past it (or after ``wait`` seconds)."""
    session = await console.session()
    deadline = asyncio.get_running_loop().time() + wait
    while asyncio.get_running_loop().time() < deadline:
        found = await session.record(thread_id)
        if found is None:
            return None
        moved = found.status is not ThreadStatus.RUNNING and not (
            found.status is ThreadStatus.INTERRUPTED and fingerprint(found.pending) == answered)
        if moved:
            break
        await asyncio.sleep(0.1)
    return await decided_by(console, thread_id)


async def decide(request: Request, console: Console, who: Principal) -> Response:
    form = request.state.form
    thread_id = form.get("thread_id", "")
    session = await console.session()
    record = await session.record(thread_id)
    row = item(record) if record is not None and record.status is ThreadStatus.INTERRUPTED \
        else None
    if row is None or row["fingerprint"] != form.get("fingerprint"):
        by = await decided_by(console, thread_id) if record is not None else None
        await console.log(who, "decide", thread_id, False, f"lost: decided by {by}")
        return page(request, "lost.html", 409, thread_id=thread_id, by=by, who=who.user)
    try:
        decisions = decisions_from(form, row)
    except (KeyError, ValueError) as exc:
        return Response(f"bad form: {exc}", status_code=400, media_type="text/plain")
    value = {"decisions": decisions, "by": who.user.name}
    session = await console.warm(record.graph)
    note = form.get("message") or None
    try:
        outcome = await session.resume(thread_id, value, lambda *_: None)
    except AccordError as exc:
        by = await winner(console, thread_id, row["fingerprint"])
        await console.log(who, "decide", thread_id, False, f"{exc}; decided by {by}")
        return page(request, "lost.html", 409, thread_id=thread_id, by=by, who=who.user,
                    error=str(exc))
    await console.log(who, f"decide:{form['decision']}", thread_id, True, note)
    refused = (outcome.interrupt or {}).get("error") if outcome.status == "interrupted" else None
    if refused:
        return Response(f"refused: {refused}", status_code=422, media_type="text/plain")
    return RedirectResponse(request.url_for("console:thread", thread_id=quote(thread_id, safe="")), 303)


__all__ = ["decide", "decisions_from", "inbox", "item", "pending_items"]
