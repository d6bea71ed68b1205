"""The handoff envelope: read, upgraded from the previous schema version, refused when bad."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from accord.agents import AgentSpec, Handoff
from accord.errors import AccordError
from accord.resilience import (
    SCHEMA_VERSION,
    HandoffCorrupt,
    HandoffEnvelope,
    HandoffExpired,
    HandoffInvalid,
    LetterReason,
    UnknownHandoffVersion,
)
from accord.resilience.envelope import check_envelope, read_envelope

V1 = Path(__file__).parents[1] / "data" / "handoff_v1.json"
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def spec(schema=None) -> AgentSpec:
    return AgentSpec(id="billing", version="1.2.0", purpose="bills", kind="rules",
                     handler=lambda h, t: None, input_schema=schema)


def current() -> dict:
    return HandoffEnvelope(sender="router", recipient="billing", task_id="task-1",
                           thread_id="t-1", created_at=NOW, priority=3, ttl=60.0,
                           payload={"query": "refund me", "context": {"plan": "pro"}}).stored()


def test_the_agent_receives_the_envelope_and_it_is_frozen():
    assert Handoff is HandoffEnvelope
    envelope = read_envelope(current(), recipient="billing", task_id="task-1")
    assert (envelope.query, envelope.context, envelope.priority) == ("refund me", {"plan": "pro"}, 3)
    assert envelope.schema_version == SCHEMA_VERSION == 2
    with pytest.raises(ValidationError):
        envelope.priority = 9  # type: ignore[misc]
    assert "successors" not in envelope.stored() and "ledger" not in envelope.stored()


def test_a_stored_envelope_of_the_previous_schema_version_is_accepted():
    stored = json.loads(V1.read_text())
    envelope = read_envelope(stored, recipient="billing", task_id="task-1")
    assert envelope.schema_version == 2
    assert envelope.query == "my invoice INV-1 is wrong"
    assert envelope.context == {"plan": "pro"}
    assert (envelope.sender, envelope.thread_id, envelope.priority) == ("router", "t-envelope", 0)
    assert envelope.created_at == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("version", [3, 99, 0, "2"])
def test_an_unknown_schema_version_is_a_typed_error(version):
    with pytest.raises(UnknownHandoffVersion, match="unknown schema version") as caught:
        read_envelope({**current(), "schema_version": version}, recipient="billing",
                      task_id="task-1")
    assert isinstance(caught.value, AccordError)
    assert caught.value.dead_letter["reason"] is LetterReason.UNKNOWN_VERSION


@pytest.mark.parametrize("stored, why", [
    ("not an envelope", "a str, not an envelope"),
    ({k: v for k, v in current().items() if k != "schema_version"}, "no schema_version"),
    ({**current(), "priority": "urgent"}, "priority"),
    ({**current(), "created_at": "yesterday"}, "created_at"),
    ({**current(), "payload": ["refund me"]}, "payload"),
    ({**current(), "recipient": "tech"}, "addressed to tech"),
    ({**current(), "surprise": 1}, "surprise"),
])
def test_a_corrupt_envelope_is_a_typed_error_naming_the_cause(stored, why):
    with pytest.raises(HandoffCorrupt, match="corrupt") as caught:
        read_envelope(stored, recipient="billing", task_id="task-1")
    assert why in str(caught.value)
    assert caught.value.dead_letter["payload"] == stored


def test_an_expired_envelope_and_an_invalid_payload_are_refused():
    envelope = read_envelope(current(), recipient="billing", task_id="task-1")
    check_envelope(envelope, spec(), NOW + timedelta(seconds=60))  # on the dot: still valid
    with pytest.raises(HandoffExpired, match="expired at 2026-01-05T10:01:00") as caught:
        check_envelope(envelope, spec(), NOW + timedelta(seconds=61))
    assert caught.value.dead_letter["agent_version"] == "1.2.0"

    class NeedsEmail(BaseModel):
        query: str
        email: str

    with pytest.raises(HandoffInvalid, match="NeedsEmail: email: Field required"):
        check_envelope(envelope, spec(NeedsEmail), NOW)
