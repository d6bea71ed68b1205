"""Who may call the runs API: the hook an authentication layer fills.

Every route of the runs API awaits ``authorize(request, role)`` before it does anything:
``Role.VIEWER`` for reads (status, state, events), ``Role.OPERATOR`` (the approver's role) for
what changes a thread (runs, resumes, cancels). The roles and refusals are the console's
(``accord.server.auth``): one :class:`Role`, one :class:`Forbidden` (403), one
:class:`Unauthenticated` (401). A hook returns the caller's name (or None): it becomes the
``by`` of a decision or a cancel, whatever the body says.

``build_app`` uses :func:`console_users`: while the console has no users (the embedded default)
everyone is let in; once ``accord console-user add`` created one, every call needs
``Authorization: Bearer TOKEN`` of a user whose role suffices, and a refusal is recorded in the
console's log. ``build_app(authorize=...)`` swaps in another check; :func:`allow_all` lets
everyone in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request

from accord.server.auth import Forbidden, NotSignedIn, Principal, Role, principal, require

if TYPE_CHECKING:
    from accord.server.console.web import Console

Unauthenticated = NotSignedIn
"""The request names no caller the app knows: HTTP 401."""

Authorize = Callable[[Request, Role], Awaitable[str | None]]
"""Checks a request for a role; returns the caller's name (or None) or raises."""


async def allow_all(_request: Request, _role: Role) -> str | None:
    """No authentication (the server listens on loopback unless told otherwise)."""
    return None


def console_users(console: Console) -> Authorize:
    """The console's users and API tokens guard the runs API once any user exists."""

    async def authorize(request: Request, role: Role) -> str | None:
        if not await asyncio.to_thread(console.store.has_users):
            return None
        who: Principal | None = None
        action = f"api:{request.method} {request.url.path}"
        target = request.path_params.get("thread_id")
        try:
            header = request.headers.get("authorization")
            if not header:
                raise NotSignedIn("this server has users: send Authorization: Bearer TOKEN")
            who = await asyncio.to_thread(principal, console.store, await console.signer(),
                                          None, header)
            require(who, role)
        except (NotSignedIn, Forbidden) as exc:
            await console.log(who, action, target, False, str(exc))
            raise
        return who.user.name

    return authorize


__all__ = ["Authorize", "Forbidden", "Role", "Unauthenticated", "allow_all", "console_users"]
