"""Which failures are retried, and how long a 429's Retry-After asks to wait."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import openai
import pytest
from pydantic import BaseModel, ValidationError

from accord.resilience import MAX_RETRY_AFTER, is_transient, retry_after


def status_error(code: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(code, headers=headers or {}, request=request)
    kind = {429: openai.RateLimitError, 500: openai.InternalServerError,
            400: openai.BadRequestError}.get(code, openai.APIStatusError)
    return kind("provider said no", response=response, body=None)


@pytest.mark.parametrize("code, transient", [(429, True), (500, True), (503, True),
                                             (400, False), (401, False), (404, False),
                                             (408, False), (409, False), (422, False)])
def test_only_429_and_5xx_are_transient(code, transient):
    assert is_transient(status_error(code)) is transient


def test_transport_failures_are_transient_and_validation_is_not():
    request = httpx.Request("POST", "http://127.0.0.1/")
    assert is_transient(openai.APIConnectionError(request=request))
    assert is_transient(openai.APITimeoutError(request=request))
    assert is_transient(httpx.RemoteProtocolError("peer closed", request=request))
    assert is_transient(TimeoutError()) and is_transient(ConnectionResetError())
    with pytest.raises(json.JSONDecodeError) as bad_json:
        json.loads('{"choices": [')
    assert is_transient(bad_json.value)

    class Choice(BaseModel):
        target: str

    with pytest.raises(ValidationError) as invalid:
        Choice.model_validate({})
    assert not is_transient(invalid.value)
    assert not is_transient(ValueError("bad request"))


def test_retry_after_in_seconds_milliseconds_or_a_date():
    assert retry_after(status_error(429, {"retry-after": "2"})) == 2.0
    assert retry_after(status_error(429, {"retry-after-ms": "250"})) == 0.25
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert retry_after(status_error(429, {"retry-after": date}), now=now) == 7.0
    assert retry_after(status_error(429, {"retry-after": "3600"})) == MAX_RETRY_AFTER
    assert retry_after(status_error(429, {"retry-after": "soon"})) is None
    assert retry_after(status_error(429)) is None
    assert retry_after(ValueError("no response")) is None
