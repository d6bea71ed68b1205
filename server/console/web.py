"""What every console page shares: the database handles, who asks, bounded forms, templates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from accord.engine.session import Session
from accord.server.auth import (
    COOKIE,
    CsrfMismatch,
    Forbidden,
    NotSignedIn,
    Principal,
    Signer,
    check_csrf,
    principal,
    require,
)
from accord.server.console import datasets
from accord.server.console.store import ConsoleStore, Role

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024
"""A form body larger than this is refused (413) before it is read whole."""

templates = Jinja2Templates(directory=str(HERE / "templates"))


class FormTooLarge(Exception):
    """A request body over ``MAX_FORM_BYTES``."""


class Console:
    """The console's handles on one database, opened on first use."""

    def __init__(self, url: str | None = None, *, graph_ref: str | None = None) -> None:
        self.url = url
        self.graph_ref = graph_ref
        self.store = ConsoleStore(url)
        self._signer: Signer | None = None
        self._holder: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[Session] | None = None
        self._opening = asyncio.Lock()

    async def signer(self) -> Signer:
        if self._signer is None:
            self._signer = await asyncio.to_thread(Signer.from_store, self.store)
        return self._signer

    async def session(self) -> Session:
        """The engine session, held open by a task of the server's loop: when the loop ends,
        the task is cancelled and the saver closed inside it."""
        async with self._opening:
            if self._holder is None:
                ready: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
                self._holder = asyncio.create_task(self._hold(ready), name="accord-console")
                self._ready = ready
        return await asyncio.shield(self._ready)

    async def warm(self, graph: str | None) -> Session:
        """The session with ``graph`` loaded and compiled off the event loop (loading a graph
        reads files; ``langgraph dev`` refuses blocking calls on its loop)."""
        session = await self.session()
        if graph:
            await asyncio.to_thread(session.graph, graph)
        return session

    async def _hold(self, ready: asyncio.Future[Session]) -> None:
        try:
            async with Session.open(self.url, graph_ref=self.graph_ref) as session:
                ready.set_result(session)
                await asyncio.Event().wait()
        except Exception as exc:  # noqa: BLE001 - the next request sees it and tries again
            if not ready.done():
                ready.set_exception(exc)
            self._holder = None
        finally:
            await asyncio.to_thread(self.store.close)

    async def close(self) -> None:
        if self._holder is not None:
            self._holder.cancel()
            await asyncio.gather(self._holder, return_exceptions=True)
            self._holder = None

    async def log(self, who: Principal | None, action: str, target: str | None, allowed: bool,
                  note: str | None = None) -> None:
        name = who.user.name if who else None
        logger.info("console %s %s by %s: %s", action, target, name,
                    "allowed" if allowed else "refused")
        await asyncio.to_thread(self.store.log, name, action, target, allowed, note)


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An urlencoded body, refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise FormTooLarge
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("csrf", getattr(request.state, "csrf", ""))
    context.setdefault("langsmith", datasets.configured())
    return templates.TemplateResponse(request, name, context, status_code=status)


Handler = Callable[[Request, Console, Principal], Awaitable[Response]]


def guarded(console: Console, role: Role, action: str | None = None) -> Callable[
        [Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: who asks (401 otherwise), the role (403, recorded), CSRF on POST."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            signer = await console.signer()
            who: Principal | None = None
            try:
                who = await asyncio.to_thread(
                    principal, console.store, signer, request.cookies.get(COOKIE),
                    request.headers.get("authorization"))
                form: dict[str, str] = {}
                if request.method == "POST":
                    form = await read_form(request)
                    check_csrf(signer, who, form.get("csrf"))
                request.state.form = form
                request.state.csrf = signer.csrf(who.nonce) if who.nonce else ""
                require(who, role)
            except NotSignedIn as exc:
                if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                    return RedirectResponse(request.url_for("console:signin"), 303)
                return Response(str(exc), status_code=401, media_type="text/plain")
            except FormTooLarge:
                return Response("form too large", status_code=413, media_type="text/plain")
            except (Forbidden, CsrfMismatch) as exc:
                form = getattr(request.state, "form", None) or {}
                target = (request.path_params.get("thread_id") or form.get("thread_id")
                          or form.get("letter_id") or request.url.path)
                await console.log(who, action or request.url.path, target, False, str(exc))
                return Response(str(exc), status_code=403, media_type="text/plain")
            try:
                return await handler(request, console, who)
            except Exception:
                logger.exception("console: %s %s failed", request.method, request.url.path)
                return Response("internal error (see the server's log)", status_code=500,
                                media_type="text/plain")

        return endpoint

    return wrap


__all__ = ["Console", "FormTooLarge", "MAX_FORM_BYTES", "guarded", "page", "read_form"]
