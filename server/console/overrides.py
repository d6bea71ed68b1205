"""Manual overrides and feedback, each recorded with who and why in the console's log (and the
thread's audit where the engine writes one): cancel a thread, reassign its task to another
declared node, retry a dead letter (admin); fork a thread at a checkpoint, label a thread or a
step good or bad with a note (approver); the labels as JSON lines.

Every override needs a reason; without one it is refused (400) before anything is done."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accord.checkpoints import ThreadNotFound
from accord.checkpoints.timetravel import fork
from accord.engine.reassign import UndeclaredTarget
from accord.errors import AccordError
from accord.records import ThreadStatus
from accord.resilience import deadletters
from accord.server.auth import Principal
from accord.server.console import datasets
from accord.server.console.web import Console, page
from accord.server.runs import THREAD_ID

LABELS = ("good", "bad")


def _text(message: str, status: int) -> Response:
    return Response(message, status_code=status, media_type="text/plain")


def _to_thread(request: Request, thread_id: str) -> Response:
    return RedirectResponse(request.url_for("console:thread", thread_id=quote(thread_id, safe="")),
                            303)


def _reason(form: dict[str, str]) -> str | None:
    why = (form.get("reason") or "").strip()
    return why[:2000] if why else None


async def _refused(console: Console, who: Principal, action: str, target: str, why: str,
                   exc: Exception) -> Response:
    await console.log(who, action, target, False, f"{why}; {exc}")
    status = 404 if isinstance(exc, ThreadNotFound) else 400 if isinstance(
        exc, UndeclaredTarget) else 409
    return _text(str(exc), status)


async def cancel_thread(request: Request, console: Console, who: Principal) -> Response:
    """Stop a waiting or failed-to-finish thread: it ends ``failed``, cancelled by the signed-in
    user for the reason given (``Session.cancel``). A run in flight in another process is not
    stopped mid-step (409)."""
    form = request.state.form
    thread_id, why = form.get("thread_id", ""), _reason(form)
    if not why:
        return _text("a cancel needs a reason", 400)
    session = await console.session()
    try:
        record = await session.record(thread_id)
        if record is None:
            raise ThreadNotFound(f"unknown thread {thread_id!r}")
        if record.status is ThreadStatus.RUNNING and thread_id not in session._running:
            raise AccordError(f"thread {thread_id!r} is running in another process; a run is "
                              "not stopped mid-step: cancel it once it stops (or through "
                              "the runs API of the process that runs it)")
        await session.cancel(thread_id, by=who.user.name, reason=why)
    except AccordError as exc:
        return await _refused(console, who, "cancel", thread_id, why, exc)
    await console.log(who, "cancel", thread_id, True, why)
    return _to_thread(request, thread_id)


async def reassign_task(request: Request, console: Console, who: Principal) -> Response:
    """Move a waiting or failed thread's task to another node the router may hand it to, then
    continue the thread there (``Session.reassign``)."""
    form = request.state.form
    thread_id, target = form.get("thread_id", ""), (form.get("target") or "").strip()
    why = _reason(form)
    if not why:
        return _text("a reassignment needs a reason", 400)
    session = await console.session()
    try:
        record = await session.record(thread_id)
        await console.warm(record.graph if record is not None else None)
        await session.reassign(thread_id, target, by=who.user.name, reason=why,
                               on_update=lambda *_: None)
    except AccordError as exc:
        return await _refused(console, who, f"reassign:{target}", thread_id, why, exc)
    await console.log(who, f"reassign:{target}", thread_id, True, why)
    return _to_thread(request, thread_id)


async def fork_thread(request: Request, console: Console, who: Principal) -> Response:
    """Copy a thread at one of its checkpoints into a new thread (``checkpoints.timetravel``);
    the original is untouched. The new thread's replay is shown."""
    form = request.state.form
    thread_id, checkpoint = form.get("thread_id", ""), form.get("checkpoint_id", "")
    new_id = (form.get("new_thread_id") or "").strip() or f"{thread_id}-fork-{uuid.uuid4().hex[:6]}"
    why = _reason(form) or "forked from the console"
    if not THREAD_ID.fullmatch(new_id):
        return _text("the new thread id may hold letters, digits and . _ : @ - only "
                     "(at most 200)", 400)
    session = await console.session()
    try:
        name = await session.graph_of(thread_id)
        graph = (await console.warm(name)).graph(name)
        await fork(graph, thread_id, checkpoint, new_id, by=who.user.name)
    except AccordError as exc:
        return await _refused(console, who, "fork", thread_id, why, exc)
    await console.log(who, "fork", thread_id, True, f"{why}; {checkpoint} -> {new_id}")
    return _to_thread(request, new_id)


async def letters_page(request: Request, console: Console, who: Principal) -> Response:
    session = await console.session()
    found = await session.saver._offload(deadletters.letters, session.saver, status="dead",
                                         limit=100)
    return page(request, "letters.html", letters=found, who=who.user, csrf=request.state.csrf)


async def retry_letter(request: Request, console: Console, who: Principal) -> Response:
    """Re-enter a dead letter's thread from its checkpoint, as ``accord dlq retry`` does."""
    form = request.state.form
    letter_id, why = form.get("letter_id", ""), _reason(form)
    if not why:
        return _text("a retry needs a reason", 400)
    session = await console.session()
    try:
        outcome = await session.retry_letter(letter_id, lambda *_: None)
    except AccordError as exc:
        await console.log(who, "dlq:retry", letter_id, False, f"{why}; {exc}")
        return Response(str(exc), status_code=409, media_type="text/plain")
    await console.log(who, "dlq:retry", letter_id, True, why)
    return _to_thread(request, outcome.thread_id)


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
    return _to_thread(request, thread_id)


async def _thread_texts(console: Console, thread_ids: set[str]) -> dict[str, dict[str, Any]]:
    """What each labelled thread asked and answered, for the dataset's examples."""
    from accord.graphs.state import latest_request

    session, found = await console.session(), {}
    for thread_id in sorted(thread_ids):
        try:
            name = await session.graph_of(thread_id)
            graph = (await console.warm(name)).graph(name)
            values = (await graph.aget_state({"configurable": {"thread_id": thread_id}})).values
        except AccordError:
            continue
        request = latest_request(values or {})
        found[thread_id] = {"request": request.text if request is not None else None,
                            "reply": (await session.outcome(name, thread_id)).reply}
    return found


async def export_langsmith(request: Request, console: Console, who: Principal) -> Response:
    """Send every label to the LangSmith dataset (``accord.server.console.datasets``)."""
    labels = await asyncio.to_thread(console.store.feedback)
    dataset = datasets.dataset_name()
    if not datasets.configured():
        await console.log(who, "feedback:langsmith", dataset, False, "not configured")
        return _text(f"LangSmith is not configured: set {datasets.KEY_ENV}", 409)
    threads = await _thread_texts(console, {label["thread_id"] for label in labels})
    try:
        done = await asyncio.to_thread(datasets.export, labels, threads)
    except Exception as exc:  # noqa: BLE001 - LangSmith down or refusing: said, nothing lost
        await console.log(who, "feedback:langsmith", dataset, False, str(exc)[:500])
        return _text(f"LangSmith refused the export: {str(exc).splitlines()[0][:300]}", 502)
    await console.log(who, "feedback:langsmith", dataset, True, f"{done.examples} labels")
    return _text(f"exported {done.examples} labels to LangSmith dataset {done.dataset} "
                 f"({done.dataset_id})", 200)


async def feedback_jsonl(request: Request, console: Console, who: Principal) -> Response:
    text = await asyncio.to_thread(console.store.feedback_jsonl)
    return Response(text, media_type="application/x-ndjson")


__all__ = ["cancel_thread", "export_langsmith", "feedback_jsonl", "fork_thread", "label",
           "letters_page", "reassign_task", "retry_letter"]
