"""The runs API's errors as JSON ``{"error": "..."}`` with the HTTP status that fits."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from accord.checkpoints import ThreadNotFound
from accord.engine.cancel import NotCancellable
from accord.engine.errors import InvalidInput, NotWaiting, ThreadUnfinished, ThreadWaiting
from accord.engine.reassign import NotReassignable, UndeclaredTarget
from accord.errors import AccordError
from accord.graphs.errors import InvalidResume, UnknownGraph
from accord.guardrails.base import GuardrailTripwireTriggered, GuardStop
from accord.server.access import Forbidden, Unauthenticated
from accord.server.bodies import BadRequest, BodyTooLarge
from accord.server.executors import ExecutorBusy

logger = logging.getLogger(__name__)


class Conflict(AccordError):
    """The thread's state refuses the request (queued work, a run elsewhere): HTTP 409."""


STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (BodyTooLarge, 413),
    (BadRequest, 400),
    (InvalidInput, 400),
    (InvalidResume, 400),
    (GuardrailTripwireTriggered, 400),
    (UndeclaredTarget, 400),
    (GuardStop, 429),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (ThreadNotFound, 404),
    (UnknownGraph, 404),
    (Conflict, 409),
    (NotCancellable, 409),
    (NotReassignable, 409),
    (NotWaiting, 409),
    (ThreadWaiting, 409),
    (ThreadUnfinished, 409),
    (ExecutorBusy, 503),
)
"""The HTTP status of each error a request can cause (the first match wins)."""


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"Connection": "close"} if status == 413 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def status_of(exc: BaseException) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 400)


Handler = Callable[[Request], Awaitable[Response]]


def json_errors(handler: Handler) -> Handler:
    """The handler, with accord's errors answered as JSON (anything else is a 500, logged)."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except AccordError as exc:
            text = str(exc).strip().splitlines()
            return error_response(status_of(exc), text[0] if text else type(exc).__name__)
        except Exception:
            logger.exception("runs API: %s %s failed", request.method, request.url.path)
            return error_response(500, "internal error; see the server's log")

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


__all__ = ["Conflict", "error_response", "json_errors", "status_of"]
