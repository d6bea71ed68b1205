"""``GET /api/threads/{id}/events``: a thread's audit events and status changes as
Server-Sent Events, read from the database.

The stream reads the thread index and the audit log (``accord_audit``, through the saver)
every ``poll`` seconds, so it follows a thread whichever process runs it (this server, a
worker, the CLI). Three kinds of event:

- ``audit``: one audit event (JSON), with ``id:`` its position in the thread's log (1, 2, ...);
  a client that reconnects with ``Last-Event-ID: n`` (or ``?last_event_id=n``) gets the
  events after the n-th;
- ``status``: the thread's status (``queued``, ``running``, ``interrupted``, ``done``,
  ``failed``) with its pending approval or error, sent first and whenever it changes;
- ``end``: the thread stopped (``done``, ``failed`` or ``interrupted``, with no work queued):
  the last event of the stream.

A comment line (``: keep-alive``) goes out every ``KEEPALIVE`` seconds while nothing happens.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from accord.checkpoints import ThreadNotFound, ThreadRecord
from accord.records import ThreadStatus
from accord.server.access import Role
from accord.server.bodies import BadRequest
from accord.server.executors import live_status
from accord.server.shapes import jsonable

if TYPE_CHECKING:
    from accord.server.runs import RunsAPI

KEEPALIVE = 15.0
"""Seconds between keep-alive comments of a quiet stream."""

STOPPED = frozenset({ThreadStatus.DONE.value, ThreadStatus.FAILED.value,
                     ThreadStatus.INTERRUPTED.value})
"""Statuses that end a stream (when no work is queued for the thread)."""


def sse(data: Any, *, event: str, id: int | None = None) -> str:
    """One Server-Sent Event."""
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _last_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Last-Event-ID must be an event id (a number), got {raw!r}") from None
    if value < 0:
        raise BadRequest("Last-Event-ID must not be negative")
    return value


def _status(status: str | None, record: ThreadRecord | None) -> dict[str, Any]:
    waiting = status == ThreadStatus.INTERRUPTED.value and record is not None
    return {"status": status, "epoch": record.epoch if record is not None else 0,
            "pending": jsonable(record.pending) if waiting else None,
            "error": record.error if record is not None and status == "failed" else None}


async def follow(api: RunsAPI, thread_id: str, after: int) -> AsyncIterator[str]:
    """The thread's events after the ``after``-th, until it stops."""
    session, executor = api._bound()
    saver = session.saver
    sent, shown, quiet_since = after, None, time.monotonic()
    while True:
        record = await session.record(thread_id)
        events = await saver._offload(saver.audit_log, thread_id)
        for position, event in enumerate(events[sent:], start=sent + 1):
            yield sse(jsonable(event.model_dump()), event="audit", id=position)
            quiet_since = time.monotonic()
        sent = max(sent, len(events))
        status = _status(live_status(executor, thread_id, record), record)
        key = (status["status"], status["epoch"])
        if key != shown:
            shown = key
            quiet_since = time.monotonic()
            yield sse(status, event="status")
        if record is not None and status["status"] in STOPPED:
            yield sse({"status": status["status"]}, event="end")
            return
        if time.monotonic() - quiet_since >= KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(api.poll)


def events_endpoint(api: RunsAPI) -> Callable[[Request], Awaitable[Response]]:
    async def events(request: Request) -> Response:
        await api.authorize(request, Role.VIEWER)
        session, executor = api._bound()
        thread_id = request.path_params["thread_id"]
        after = _last_id(request)
        record = await session.record(thread_id)
        if record is None and not (executor.pending(thread_id, record)
                                   or executor.running(thread_id)):  # started, not claimed yet
            raise ThreadNotFound(f"unknown thread {thread_id!r}")
        return StreamingResponse(follow(api, thread_id, after), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return events


__all__ = ["follow", "events_endpoint", "sse"]
