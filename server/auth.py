"""Who is asking: signed session cookies, API tokens, CSRF tokens and roles for accord's console.

A session cookie is ``name.role.expires.nonce.signature`` with an HMAC-SHA256 signature under
the console's secret (``$ACCORD_CONSOLE_SECRET``, else one generated and stored in the
database). A forged, altered or expired cookie, or an unknown ``Authorization: Bearer`` token,
is refused with 401. Each session carries a CSRF token derived from the cookie (HMAC of its
nonce), which every form must echo: the reviewer's identity always comes from the session,
never from a form field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from accord.errors import AccordError

if TYPE_CHECKING:
    from accord.server.console.store import ConsoleStore

class Role(IntEnum):
    """What a console user may do; each role may do what the ones below it may."""

    VIEWER = 1
    """Read the inbox, replays, health, and the runs API's threads, states and events."""
    APPROVER = 2
    """Answer approvals, cancel and fork threads, label them; start, resume and cancel runs
    through the runs API."""
    ADMIN = 3
    """Retry dead letters, reassign work."""
    OPERATOR = 2
    """The runs API's name for what changes a thread: the approver's role."""

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            found = cls[name.upper()]
        except KeyError:
            found = None
        if found is None or name.upper() == "OPERATOR":
            raise UnknownRole(f"unknown role {name!r}; use viewer, approver or admin")
        return found


class UnknownRole(AccordError):
    """A role name that is not viewer, approver or admin."""


@dataclass(frozen=True)
class User:
    """A console user as stored."""

    name: str
    """The name shown as the decider of what the user does."""
    role: Role
    """What the user may do."""


SECRET_ENV = "ACCORD_CONSOLE_SECRET"
COOKIE = "accord_console"
SESSION_SECONDS = 8 * 3600
"""How long a sign-in lasts."""


class NotSignedIn(AccordError):
    """No session or token, or a forged, altered or expired one (HTTP 401)."""


class Forbidden(AccordError):
    """The user's role does not allow the action (HTTP 403)."""


class CsrfMismatch(AccordError):
    """A form without this session's CSRF token (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """The signed-in user of one request."""

    user: User
    """Who, and in which role."""
    nonce: str
    """The session's random part (the CSRF token is derived from it)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Signer:
    """Signs and checks session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str, *, clock: object = time.time) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()
        self._clock = clock

    @classmethod
    def from_store(cls, store: ConsoleStore) -> Signer:
        return cls(os.environ.get(SECRET_ENV) or store.signing_secret())

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def session(self, user: User, seconds: int = SESSION_SECONDS) -> str:
        name = _b64(user.name.encode())
        body = f"{name}.{user.role.name.lower()}.{int(self._clock()) + seconds}." \
               f"{secrets.token_hex(12)}"
        return f"{body}.{self._mac(body)}"

    def check(self, cookie: str | None) -> tuple[str, str]:
        """The user name and nonce of a valid cookie; ``NotSignedIn`` otherwise."""
        if not cookie or cookie.count(".") != 4:
            raise NotSignedIn("sign in first")
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise NotSignedIn("the session is not valid; sign in again")
        name, _role, expires, nonce = body.split(".")
        if not expires.isdigit() or int(expires) < self._clock():
            raise NotSignedIn("the session expired; sign in again")
        padded = name + "=" * (-len(name) % 4)
        return base64.urlsafe_b64decode(padded).decode(), nonce

    def csrf(self, nonce: str) -> str:
        return self._mac("csrf:" + nonce)


def principal(store: ConsoleStore, signer: Signer, cookie: str | None,
              authorization: str | None) -> Principal:
    """The request's user from a bearer token or the session cookie (role re-read from the
    store, so a changed role applies at once)."""
    if authorization and authorization.lower().startswith("bearer "):
        user = store.by_token(authorization[7:].strip())
        if user is None:
            raise NotSignedIn("unknown API token")
        return Principal(user, "")
    name, nonce = signer.check(cookie)
    user = store.user(name)
    if user is None:
        raise NotSignedIn("the session's user no longer exists")
    return Principal(user, nonce)


def require(who: Principal, role: Role) -> None:
    if who.user.role < role:
        raise Forbidden(f"{who.user.name} is a {who.user.role.name.lower()}; "
                        f"this needs {role.name.lower()}")


def check_csrf(signer: Signer, who: Principal, given: str | None) -> None:
    """Tokens skip CSRF (no cookie is involved); a session's form must echo its token."""
    if not who.nonce:
        return
    if not given or not hmac.compare_digest(given, signer.csrf(who.nonce)):
        raise CsrfMismatch("the form's CSRF token is missing or wrong; reload the page")


__all__ = ["COOKIE", "CsrfMismatch", "Forbidden", "NotSignedIn", "Principal", "Role", "Signer",
           "UnknownRole", "User",
           "check_csrf", "principal", "require"]
