"""Who may call the runs API: the hook an authentication layer fills.

Every route of the runs API awaits ``authorize(request, role)`` before it does anything:
``"viewer"`` for reads (status, state, events), ``"operator"`` for what changes a thread
(runs, resumes, cancels). The default lets everyone in; an app built with
``build_app(authorize=...)`` swaps in a real check, which raises :class:`Forbidden` (403) or
:class:`Unauthenticated` (401) to refuse, and may return the caller's name: it becomes the
``by`` of a cancel when the body names nobody.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from starlette.requests import Request

from accord.errors import AccordError


class Role(StrEnum):
    """What a route needs of its caller."""

    VIEWER = "viewer"
    """Reads threads, their state and events."""
    OPERATOR = "operator"
    """Starts, resumes and cancels runs."""


class Unauthenticated(AccordError):
    """The request names no caller the app knows: HTTP 401."""


class Forbidden(AccordError):
    """The caller lacks the role the route needs: HTTP 403."""


Authorize = Callable[[Request, Role], Awaitable[str | None]]
"""Checks a request for a role; returns the caller's name (or None) or raises."""


async def allow_all(_request: Request, _role: Role) -> str | None:
    """The default: no authentication (the server listens on loopback unless told otherwise)."""
    return None


__all__ = ["Authorize", "Forbidden", "Role", "Unauthenticated", "allow_all"]
