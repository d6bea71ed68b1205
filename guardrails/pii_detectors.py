"""Detectors of personal data and secrets: each finds one kind of value in text.

Email comes from langchain's ``PIIMiddleware`` detectors (``detect_email``); the others are
accord's: payment cards (IIN prefix, grouping and the Luhn check, 13-19 digits), IBAN (country
length and mod-97), phone numbers, US SSN, UK National Insurance numbers, Canadian SINs (Luhn)
and API keys and secrets. Each detector returns ``PIIMatch`` dicts (langchain's shape), so
they also plug into ``PIIMiddleware(detector=...)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from langchain.agents.middleware._redaction import PIIMatch, detect_email

Detector = Callable[[str], list[PIIMatch]]

_ID_CONTEXT = re.compile(
    r"(?:order|tracking|invoice|inv|shipment|parcel|ref(?:erence)?|po|sku|serial|ticket|case"
    r"|receipt|confirmation|transaction|txn|booking|build|id|no\.?|number)\W{0,4}(?:#|no\.?|number)?"
    r"\W{0,3}$", re.IGNORECASE)
_CARD_CONTEXT = re.compile(r"card|visa|master|amex|cc\b|credit|debit|pay", re.IGNORECASE)


def _before(text: str, start: int, width: int = 28) -> str:
    return text[max(0, start - width):start]


def _labelled_id(text: str, start: int) -> bool:
    """True when the value right before ``start`` labels it an order/invoice/ticket number."""
    before = _before(text, start)
    return bool(_ID_CONTEXT.search(before)) and not _CARD_CONTEXT.search(before)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _match(kind: str, m: re.Match[str], group: int = 0) -> PIIMatch:
    return PIIMatch(type=kind, value=m.group(group), start=m.start(group), end=m.end(group))


# payment cards ------------------------------------------------------------------------------
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|2)|35)")
_GROUPINGS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)}
_IBAN_HEAD = re.compile(r"[A-Z]{2}\d{2}[ -]$")


def detect_card(text: str) -> list[PIIMatch]:
    """Payment card numbers: a card network's prefix, a card grouping and the Luhn check."""
    out = []
    for m in _CARD.finditer(text):
        raw = m.group(0)
        digits = re.sub(r"\D", "", raw)
        groups = tuple(len(g) for g in re.split(r"[ -]", raw))
        if len(groups) > 1 and groups not in _GROUPINGS:
            continue
        if not _CARD_PREFIX.match(digits) or not luhn_ok(digits):
            continue
        if _labelled_id(text, m.start()) or _IBAN_HEAD.search(_before(text, m.start(), 5)):
            continue
        out.append(_match("card", m))
    return out


# IBAN ---------------------------------------------------------------------------------------
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23,
    "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
    "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}
"""Length of an IBAN per country (the countries accord recognises)."""
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})")


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN without spaces."""
    moved = (iban[4:] + iban[:4]).upper()
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def detect_iban(text: str) -> list[PIIMatch]:
    """IBANs: a known country, its length, and the mod-97 check (spaces every 4 allowed)."""
    out = []
    for m in _IBAN_START.finditer(text):
        country = m.group(1).upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        chars, pos = [], m.start()
        while pos < len(text) and len(chars) < length:
            char = text[pos]
            if char.isalnum():
                chars.append(char)
            elif not (char == " " and pos + 1 < len(text) and text[pos + 1].isalnum()):
                break
            pos += 1
        if len(chars) != length or (pos < len(text) and text[pos].isalnum()):
            continue
        if iban_ok("".join(chars)):
            out.append(PIIMatch(type="iban", value=text[m.start():pos], start=m.start(), end=pos))
    return out


# phone numbers ------------------------------------------------------------------------------
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\w-])")
_PHONE_NANP = re.compile(
    r"(?<![\w-])(?:1[ .-])?(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-])")
_PHONE_NATIONAL = re.compile(r"(?<![\w-])0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}(?![\w-])")
_PHONE_WORD = re.compile(r"(?:phone|call|tel|mobile|cell|text|sms|whatsapp|reach me|number)\D{0,14}$",
                         re.IGNORECASE)
_PHONE_HINT = re.compile(r"phone|call|tel\b|mobile|cell|text|sms|whatsapp|reach|my number", re.IGNORECASE)
_PHONE_PLAIN = re.compile(r"(?<![\w-])(?:\+?\d{10,13}|0\d{9,10})(?![\w-])")


def _id_not_phone(text: str, start: int) -> bool:
    return _labelled_id(text, start) and not _PHONE_HINT.search(_before(text, start, 20))


def detect_phone(text: str) -> list[PIIMatch]:
    """Phone numbers: international (+CC ...), North American and national (0...) formats, and
    bare digit runs
    introduced by a word such as 'call' or 'phone'; never a labelled order or invoice id."""
    out: list[PIIMatch] = []
    for m in _PHONE_INTL.finditer(text):
        if 8 <= len(re.sub(r"\D", "", m.group(0))) <= 15:
            out.append(_match("phone", m))
    for m in _PHONE_NANP.finditer(text):
        if not _id_not_phone(text, m.start()):
            out.append(_match("phone", m))
    for m in _PHONE_NATIONAL.finditer(text):
        if 10 <= len(re.sub(r"\D", "", m.group(0))) <= 11 and not _id_not_phone(text, m.start()):
            out.append(_match("phone", m))
    for m in _PHONE_PLAIN.finditer(text):
        if _PHONE_WORD.search(_before(text, m.start(), 24)):
            out.append(_match("phone", m))
    return out


# national ids -------------------------------------------------------------------------------
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
_SSN_PLAIN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{9}(?![\w-])")
_SSN_WORD = re.compile(r"(?:ssn|social security(?: number| no\.?)?)\W{0,6}$", re.IGNORECASE)


def detect_ssn(text: str) -> list[PIIMatch]:
    """US Social Security numbers: ``AAA-GG-SSSS`` (valid area/group/serial), or nine bare
    digits after 'SSN' / 'social security'."""
    out = [_match("ssn", m) for m in _SSN.finditer(text)]
    out += [_match("ssn", m) for m in _SSN_PLAIN.finditer(text)
            if _SSN_WORD.search(_before(text, m.start(), 30))]
    return out


_NINO = re.compile(
    r"(?<![\w-])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])")


def detect_uk_nino(text: str) -> list[PIIMatch]:
    """UK National Insurance numbers (``QQ 12 34 56 C``)."""
    return [_match("uk_nino", m) for m in _NINO.finditer(text)]


_SIN = re.compile(r"(?<![\w-])[0-79]\d{2}([ -]?)\d{3}\1\d{3}(?![\w-])")
_SIN_WORD = re.compile(r"(?:\bSIN\b|social insurance)", re.IGNORECASE)


def detect_ca_sin(text: str) -> list[PIIMatch]:
    """Canadian Social Insurance numbers: nine digits passing Luhn, named as a SIN nearby."""
    return [_match("ca_sin", m) for m in _SIN.finditer(text)
            if luhn_ok(re.sub(r"\D", "", m.group(0)))
            and _SIN_WORD.search(_before(text, m.start(), 40))]


# secrets ------------------------------------------------------------------------------------
_SECRETS = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{20,}"        # OpenAI / Anthropic style keys
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}"                 # Stripe
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"                         # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"                        # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"                      # Slack
    r"|AIza[0-9A-Za-z_-]{35}"                             # Google API key
    r"|glpat-[A-Za-z0-9_-]{20,}"                          # GitLab
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r")(?![\w-])"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)")
_ASSIGNED = re.compile(
    r"(?i:password|passwd|pwd|secret|api[_ -]?key|access[_ -]?token|token)\s*(?:is|[:=])\s*"
    r"[\"']?([^\s\"'<>]{6,})")


def detect_secret(text: str) -> list[PIIMatch]:
    """API keys and tokens by their vendors' formats, private key blocks, and the value of
    ``password: ...`` / ``api_key=...``."""
    out = [_match("secret", m) for m in _SECRETS.finditer(text)]
    out += [_match("secret", m, 1) for m in _ASSIGNED.finditer(text)
            if not m.group(1).startswith("<")]
    return out


def _email(text: str) -> list[PIIMatch]:
    return [PIIMatch(type="email", value=m["value"], start=m["start"], end=m["end"])
            for m in detect_email(text)]


DETECTORS: dict[str, Detector] = {
    "secret": detect_secret,
    "email": _email,
    "iban": detect_iban,
    "card": detect_card,
    "ssn": detect_ssn,
    "uk_nino": detect_uk_nino,
    "ca_sin": detect_ca_sin,
    "phone": detect_phone,
}
"""Every kind accord detects, in priority order (an earlier kind wins an overlap)."""


def find_all(text: str, kinds: tuple[str, ...] | None = None) -> list[PIIMatch]:
    """Every match of the kinds, without overlaps (earlier kind, then longer match wins)."""
    order = list(kinds or DETECTORS)
    found: list[tuple[int, PIIMatch]] = []
    for rank, kind in enumerate(order):
        found += [(rank, m) for m in DETECTORS[kind](text)]
    found.sort(key=lambda item: (item[0], -(item[1]["end"] - item[1]["start"])))
    kept: list[PIIMatch] = []
    for _, m in found:
        if all(m["end"] <= k["start"] or m["start"] >= k["end"] for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m["start"])


__all__ = ["DETECTORS", "IBAN_LENGTHS", "Detector", "find_all", "iban_ok", "luhn_ok"]
