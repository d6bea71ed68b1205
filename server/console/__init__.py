"""accord's web console: the approval inbox, replays, agent health, overrides and feedback.

``console_routes(url)`` gives the Starlette routes (one ``Mount`` at ``/console``) that
``accord.server.app.build_app`` serves, so ``accord serve`` / ``accord metrics-serve`` and
``langgraph dev`` (``langgraph.json`` ``http.app``) all serve the console. Users and tokens are
created with ``accord console-user add NAME --role viewer|approver|admin``.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from accord.server.auth import COOKIE, SESSION_SECONDS
from accord.server.console.health import health_page
from accord.server.console.inbox import decide, inbox
from accord.server.console.overrides import (
    cancel_thread,
    export_langsmith,
    feedback_jsonl,
    fork_thread,
    label,
    letters_page,
    reassign_task,
    retry_letter,
)
from accord.server.console.replay import thread_page
from accord.server.console.store import ConsoleStore, Role
from accord.server.console.web import HERE, Console, FormTooLarge, guarded, page, read_form

PRE_COOKIE = "accord_console_signin"
"""The sign-in form's CSRF cookie (before there is a session)."""


def _signin_routes(console: Console) -> list[Route]:
    def signin_page(request: Request, status: int = 200, error: str | None = None) -> Response:
        # double-submit: the form echoes a random cookie, which another site cannot read
        token = secrets.token_urlsafe(24)
        response = page(request, "signin.html", status, error=error, csrf=token)
        response.set_cookie(PRE_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                            path="/console")
        return response

    async def form(request: Request) -> Response:
        return signin_page(request)

    async def submit(request: Request) -> Response:
        try:
            data = await read_form(request, 8 * 1024)
        except FormTooLarge:
            return Response("form too large", status_code=413, media_type="text/plain")
        given, expected = data.get("csrf", ""), request.cookies.get(PRE_COOKIE, "")
        if not expected or not hmac.compare_digest(given, expected):
            await console.log(None, "signin", data.get("name"), False, "CSRF token mismatch")
            return Response("the form's CSRF token is missing or wrong; reload the page",
                            status_code=403, media_type="text/plain")
        user = await asyncio.to_thread(console.store.authenticate, data.get("name", ""),
                                       data.get("password", ""))
        if user is None:
            await console.log(None, "signin", data.get("name"), False, "wrong name or password")
            return signin_page(request, 401, "wrong name or password")
        signer = await console.signer()
        response = RedirectResponse(request.url_for("console:inbox"), 303)
        response.set_cookie(COOKIE, signer.session(user), max_age=SESSION_SECONDS,
                            httponly=True, samesite="strict", path="/console")
        response.delete_cookie(PRE_COOKIE, path="/console")
        return response

    async def signout(request: Request) -> Response:
        signer = await console.signer()
        try:
            _, nonce = signer.check(request.cookies.get(COOKIE))
            data = await read_form(request, 8 * 1024)
        except Exception:  # noqa: BLE001 - signing out of a bad session just clears it
            nonce, data = "", {}
        response = RedirectResponse(request.url_for("console:signin"), 303)
        if not nonce or hmac.compare_digest(data.get("csrf", ""), signer.csrf(nonce)):
            response.delete_cookie(COOKIE, path="/console")
        return response

    return [Route("/signin", form, methods=["GET"], name="signin"),
            Route("/signin", submit, methods=["POST"]),
            Route("/signout", signout, methods=["POST"], name="signout")]


def console_routes(url: str | None = None, *, graph_ref: str | None = None,
                   console: Console | None = None) -> list[Mount]:
    """The console under ``/console``, on the database at ``url`` (default ``$ACCORD_DB_URL``).
    Nothing is opened until the first request."""
    console = console or Console(url, graph_ref=graph_ref)
    viewer, approver, admin = Role.VIEWER, Role.APPROVER, Role.ADMIN

    async def home(request: Request) -> Response:
        return RedirectResponse(request.url_for("console:inbox"), 303)

    routes = [
        Route("/", home, methods=["GET"]),
        *_signin_routes(console),
        Route("/inbox", guarded(console, viewer)(inbox), methods=["GET"], name="inbox"),
        Route("/inbox/{thread_id:path}", guarded(console, viewer)(inbox), methods=["GET"],
              name="inbox_item"),
        Route("/decide", guarded(console, approver, "decide")(decide), methods=["POST"],
              name="decide"),
        Route("/threads/{thread_id:path}", guarded(console, viewer)(thread_page),
              methods=["GET"], name="thread"),
        Route("/health", guarded(console, viewer)(health_page), methods=["GET"],
              name="health"),
        Route("/letters", guarded(console, viewer)(letters_page), methods=["GET"],
              name="letters"),
        Route("/letters/retry", guarded(console, admin, "dlq:retry")(retry_letter),
              methods=["POST"], name="retry"),
        Route("/cancel", guarded(console, approver, "cancel")(cancel_thread), methods=["POST"],
              name="cancel"),
        Route("/reassign", guarded(console, admin, "reassign")(reassign_task),
              methods=["POST"], name="reassign"),
        Route("/fork", guarded(console, approver, "fork")(fork_thread), methods=["POST"],
              name="fork"),
        Route("/feedback", guarded(console, approver, "feedback")(label), methods=["POST"],
              name="feedback"),
        Route("/feedback/langsmith", guarded(console, approver, "feedback:langsmith")(
            export_langsmith), methods=["POST"], name="feedback_langsmith"),
        Route("/feedback.jsonl", guarded(console, viewer)(feedback_jsonl), methods=["GET"],
              name="feedback_jsonl"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return [Mount("/console", routes=routes, name="console")]


__all__ = ["Console", "ConsoleStore", "Role", "console_routes"]
