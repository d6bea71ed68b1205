"""Request bodies of the runs API: JSON objects of bounded size.

A body over the limit is refused (413) before it is read whole: a declared ``Content-Length``
over the limit is refused before any of the body is read, and a body without one (chunked) is
counted while it streams and refused as soon as it passes the limit.
"""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.requests import Request

from accord.errors import AccordError

MAX_BODY_ENV = "ACCORD_MAX_BODY"
DEFAULT_MAX_BODY = 1 << 20
"""Largest request body accepted, in bytes (1 MiB), unless ``$ACCORD_MAX_BODY`` says otherwise."""


class BadRequest(AccordError):
    """A request the API cannot read (malformed JSON, wrong shape): HTTP 400."""


class BodyTooLarge(AccordError):
    """A request body over the limit: HTTP 413."""


def max_body() -> int:
    return int(os.environ.get(MAX_BODY_ENV) or DEFAULT_MAX_BODY)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size > limit:
            raise BodyTooLarge(f"request body of {size} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(value).__name__}")
    return value


def optional_text(body: dict[str, Any], key: str, *, limit: int = 200) -> str | None:
    """An optional short string field of the body."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequest(f"{key!r} must be a non-empty string of at most {limit} characters")
    return value


__all__ = ["BadRequest", "BodyTooLarge", "DEFAULT_MAX_BODY", "max_body", "optional_text",
           "read_json"]
