"""Manual overrides and feedback, each recorded with who and why: retry a dead letter (admin),
label a thread or a step good or bad with a note (approver), the labels as JSON lines."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accord.errors import AccordError
from accord.resilience import deadletters
from accord.server.auth import Principal
from accord.server.console.web import Console, page

LABELS = ("good", "bad")


async def letters_page(request: Request, console: Console, who: Principal) -> Response:
    session = await console.session()
    found = await session.saver._offload(deadletters.letters, session.saver, status="dead",
                                         limit=100)
    return page(request, "letters.html", letters=found, who=who.user, csrf=request.state.csrf)


async def retry_letter(request: Request, console: Console, who: Principal) -> Response:
    """Re-enter a dead letter's thread from its checkpoint, as ``accord dlq retry`` does."""
    form = request.state.form
    letter_id, why = form.get("letter_id", ""), (form.get("reason") or "").strip()
    if not why:
        return Response("a retry needs a reason", status_code=400, media_type="text/plain")
    session = await console.session()
    saver = session.saver
    try:
        plan = await saver._offload(deadletters.plan_retry, saver, letter_id)
        thread = plan.letter.thread_id
        name = await session.graph_of(thread)
        before = await saver._offload(deadletters.thread_epoch, saver, thread)
        configurable: dict[str, Any] = {k: v for k, v in plan.configurable.items()
                                        if k != "thread_id"}
        try:
            await session.drive(name, thread, None, lambda *_: None, configurable)
        finally:
            await saver._offload(deadletters.finish_retry, saver, plan.letter, before)
    except AccordError as exc:
        await console.log(who, "dlq:retry", letter_id, False, f"{why}; {exc}")
        return Response(str(exc), status_code=409, media_type="text/plain")
    await console.log(who, "dlq:retry", letter_id, True, why)
    return RedirectResponse(request.url_for("console:thread", thread_id=quote(thread, safe="")), 303)


async def label(request: Request, console: Console, who: Principal) -> Response:
    form = request.state.form
    thread_id, value = form.get("thread_id", ""), form.get("label", "")
    if value not in LABELS or not thread_id:
        return Response("label must be good or bad, for a thread", status_code=400,
                        media_type="text/plain")
    note = (form.get("note") or "").strip() or None
    step = (form.get("step") or "").strip() or None
    await asyncio.to_thread(console.store.add_feedback, who.user.name, thread_id, step, value,
                            note)
    await console.log(who, f"feedback:{value}", thread_id, True, note)
    return RedirectResponse(request.url_for("console:thread", thread_id=quote(thread_id, safe="")), 303)


async def feedback_jsonl(request: Request, console: Console, who: Principal) -> Response:
    text = await asyncio.to_thread(console.store.feedback_jsonl)
    return Response(text, media_type="application/x-ndjson")


__all__ = ["feedback_jsonl", "label", "letters_page", "retry_letter"]
