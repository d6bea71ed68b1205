"""The content guardrails on the labelled corpus (``tests/data/guard_corpus.jsonl``): PII in many
formats, injections, off-topic requests and benign look-alikes (order numbers that pass Luhn by
chance, phone-shaped invoice ids, IBANs with a wrong check). Plus the detectors' checksums and
the redactor's placeholders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from accord.graphs.support.workflow import support_guardrails
from accord.guardrails import GuardrailConfigError, RedactPII
from accord.guardrails.evaluation import load_corpus, score
from accord.guardrails.pii_detectors import iban_ok, luhn_ok

CORPUS = Path(__file__).parents[1] / "data" / "guard_corpus.jsonl"


@pytest.fixture(scope="module")
def scores():
    return score(load_corpus(CORPUS), support_guardrails())


def test_the_corpus_covers_every_guard_and_kind():
    cases = load_corpus(CORPUS)
    assert len(cases) >= 200
    guards = Counter(c["guard"] for c in cases)
    assert guards["pii"] >= 150 and guards["prompt_injection"] >= 50 and guards["off_topic"] >= 40
    kinds = Counter(p["kind"] for c in cases for p in c.get("pii") or ())
    assert set(kinds) == {"email", "card", "iban", "phone", "ssn", "uk_nino", "ca_sin", "secret"}
    benign = [c for c in cases if c["guard"] == "pii" and not c["pii"]]
    assert len(benign) >= 60  # look-alikes that must pass untouched


def test_pii_recall_and_precision_meet_their_targets(scores):
    pii = scores["pii"]
    assert pii.recall >= 0.98 and pii.precision >= 0.95, "\n".join(pii.misses)


@pytest.mark.parametrize("guard", ["prompt_injection", "off_topic"])
def test_input_filters_catch_their_cases_and_pass_the_benign_ones(scores, guard):
    result = scores[guard]
    assert result.recall >= 0.9 and result.precision >= 0.9, "\n".join(result.misses)


def test_luhn_and_mod97_checks():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE88370400440532013000")
    assert iban_ok("GB82WEST12345698765432")


def test_redaction_numbers_placeholders_and_keeps_a_known_value_s_placeholder():
    guard = RedactPII()
    first = guard.redact("mail a@example.com or b@example.com, card 4111 1111 1111 1111")
    assert first.text == "mail <EMAIL_1> or <EMAIL_2>, card <CARD_1>"
    assert dict(first.new) == {"<EMAIL_1>": "a@example.com", "<EMAIL_2>": "b@example.com",
                               "<CARD_1>": "4111 1111 1111 1111"}
    again = guard.redact("b@example.com again, and c@example.com", first.new)
    assert again.text == "<EMAIL_2> again, and <EMAIL_3>"
    assert dict(again.new) == {"<EMAIL_3>": "c@example.com"}
    untouched = guard.redact("order #4111111111111111 and INV-1002")
    assert untouched.text == "order #4111111111111111 and INV-1002" and not untouched.new


def test_an_unknown_kind_is_a_configuration_error():
    with pytest.raises(GuardrailConfigError, match="unknown kind.*passport"):
        RedactPII(kinds=("email", "passport"))
