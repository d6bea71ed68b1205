"""Precision and recall of the content guardrails on a labelled corpus (JSON lines).

Each case names its ``guard``: ``pii`` cases list the values a redactor must replace (``pii``:
``[{"kind", "value"}]``), scored per value; ``prompt_injection`` and ``off_topic`` cases say
whether the guard must trip (``trip``), scored per case.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.guardrails.pii import RedactPII
from accord.guardrails.pii_detectors import find_all


@dataclass(frozen=True)
class Score:
    """How one guard did on its cases."""

    guard: str
    """The guard scored."""
    cases: int
    """Cases of this guard in the corpus."""
    tp: int
    """Expected hits found."""
    fp: int
    """Hits found that were not expected."""
    fn: int
    """Expected hits missed."""
    misses: tuple[str, ...] = ()
    """What was missed or wrongly found (for the report)."""

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load_corpus(path: str | Path) -> list[dict[str, Any]]:
    """The cases of a JSON-lines corpus."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _score_pii(cases: list[Mapping[str, Any]], guard: RedactPII) -> Score:
    tp = fp = fn = 0
    misses: list[str] = []
    for case in cases:
        expected = {(p["kind"], p["value"]) for p in case.get("pii") or ()}
        found = {(m["type"], m["value"]) for m in find_all(case["text"], guard.kinds)}
        tp += len(expected & found)
        fp += len(found - expected)
        fn += len(expected - found)
        misses += [f"missed {k} {v!r} in {case['text']!r}" for k, v in sorted(expected - found)]
        misses += [f"wrongly found {k} {v!r} in {case['text']!r}" for k, v in sorted(found - expected)]
    return Score(guard.name, len(cases), tp, fp, fn, tuple(misses))


def _score_flag(cases: list[Mapping[str, Any]], guard: Any) -> Score:
    tp = fp = fn = 0
    misses: list[str] = []
    for case in cases:
        tripped = guard.check(case["text"]).tripwire_triggered
        expected = bool(case["trip"])
        tp += tripped and expected
        fp += tripped and not expected
        fn += expected and not tripped
        if tripped != expected:
            misses.append(f"{'missed' if expected else 'wrongly tripped on'} {case['text']!r}")
    return Score(guard.name, len(cases), tp, fp, fn, tuple(misses))


def score(corpus: Iterable[Mapping[str, Any]], guards: Iterable[Any]) -> dict[str, Score]:
    """Each guard's score on its cases of the corpus (a case for a guard not given is skipped)."""
    chosen = {g.name: g for g in guards}
    by_guard: dict[str, list[Mapping[str, Any]]] = {}
    for case in corpus:
        by_guard.setdefault(case["guard"], []).append(case)
    out = {}
    for name, cases in by_guard.items():
        guard = chosen.get(name)
        if guard is None:
            continue
        out[name] = _score_pii(cases, guard) if isinstance(guard, RedactPII) else _score_flag(cases, guard)
    return out


__all__ = ["Score", "load_corpus", "score"]
