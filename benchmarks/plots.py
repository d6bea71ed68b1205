"""Matplotlib figures (headless): bars with min–max whiskers, and lines against a limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from benchmarks.stats import Spread


def _save(fig: plt.Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def grouped_bars(
    path: Path, title: str, groups: Sequence[str], series: Mapping[str, Sequence[Spread]],
    *, ylabel: str = "",
) -> str:
    """One bar per (group, series) at the median, whiskers from min to max."""
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(series))
    for i, (name, spreads) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        medians = [s.median for s in spreads]
        errors = [[s.median - s.low for s in spreads], [s.high - s.median for s in spreads]]
        ax.bar(xs, medians, width, yerr=errors, capsize=4, label=name)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def lines(
    path: Path, title: str, xs: Sequence[float], series: Mapping[str, Sequence[float]],
    *, xlabel: str, ylabel: str, logx: bool = False, logy: bool = False,
    bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    dashed: Sequence[str] = (),
) -> str:
    """Lines over ``xs``; ``bands`` shade min–max of a series; ``dashed`` series are limits."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, ys in series.items():
        ax.plot(xs, ys, "--" if name in dashed else "o-", label=name)
        if bands and name in bands:
            low, high = bands[name]
            ax.fill_between(xs, low, high, alpha=0.2)
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs), [str(int(x)) for x in xs])
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def panels(
    path: Path, title: str, xs: Sequence[float],
    charts: Sequence[tuple[str, str, Mapping[str, Sequence[float]]]], *, xlabel: str,
    logx: bool = False, band: tuple[float, float, int] | None = None,
) -> str:
    """Side-by-side line charts over the same ``xs``: ``(title, ylabel, series)`` each.

    ``band=(low, high, chart)`` shades a tolerance band on that chart.
    """
    fig, axes = plt.subplots(1, len(charts), figsize=(5.5 * len(charts), 4))
    for i, (ax, (sub, ylabel, series)) in enumerate(zip(axes, charts, strict=True)):
        for name, ys in series.items():
            ax.plot(xs, ys, "o-", label=name)
        if band and band[2] == i:
            ax.axhspan(band[0], band[1], alpha=0.12, label="target band")
        if logx:
            ax.set_xscale("log")
            ax.set_xticks(list(xs), [str(int(x)) for x in xs])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(sub)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)
