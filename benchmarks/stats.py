"""Numbers from noisy runs: medians, ranges, percentiles, ratios; and the figures of a section."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Spread:
    """Repeated measurements of one quantity."""

    values: tuple[float, ...]
    """Every measurement (one per repeat)."""

    @classmethod
    def of(cls, values: Any) -> Spread:
        return cls(tuple(float(v) for v in values))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile, ``q`` in 0..100."""
        if not self.values:
            return float("nan")
        ordered = sorted(self.values)
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]

    def scaled(self, factor: float) -> Spread:
        return Spread(tuple(v * factor for v in self.values))


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fmt_spread(spread: Spread, digits: int = 2) -> str:
    """``median (min–max)``."""
    return f"{fmt(spread.median, digits)} ({fmt(spread.low, digits)}–{fmt(spread.high, digits)})"


@dataclass
class Table:
    """One table of a section: a title, column names, rows of cells (already formatted)."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])


@dataclass
class Section:
    """What a benchmark section hands to the report."""

    number: int
    title: str
    method: str
    """How it was measured (markdown)."""
    tables: list[Table] = field(default_factory=list)
    verdict: str = ""
    """Target met or missed, and why (markdown)."""
    plots: list[str] = field(default_factory=list)
    """PNG file names under ``plots/``."""
    skipped: str | None = None
    """Why the section did not run, if it did not."""
    headline: str = ""
    """One line for the summary."""
