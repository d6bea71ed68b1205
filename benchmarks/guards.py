"""Precision and recall of the content guardrails on the labelled corpus, one row per guard.

    .venv/bin/python -P benchmarks/guards.py [--corpus tests/data/guard_corpus.jsonl] [--misses]

A standalone script (not a section of ``benchmarks/run.py``'s report): it runs in a second and
needs no database. The guards are the support example's defaults; the targets are PII recall
>= 0.98 at precision >= 0.95, and 0.9 / 0.9 for the input filters. Exit 1 when one is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from accord.graphs.support.workflow import support_guardrails
from accord.guardrails.evaluation import load_corpus, score

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "guard_corpus.jsonl"
TARGETS = {"pii": (0.95, 0.98), "prompt_injection": (0.9, 0.9), "off_topic": (0.9, 0.9)}
"""Guard -> (precision, recall) it must reach."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--misses", action="store_true", help="list every miss")
    args = parser.parse_args(argv)
    cases = load_corpus(args.corpus)
    started = time.perf_counter()
    scores = score(cases, support_guardrails())
    took = time.perf_counter() - started
    table = Table(title=f"content guardrails on {len(cases)} cases ({took * 1000:.0f} ms)")
    for column in ("guard", "cases", "TP", "FP", "FN", "precision", "recall", "target", "met"):
        table.add_column(column, justify="left" if column == "guard" else "right")
    missed = False
    for name, result in scores.items():
        want_p, want_r = TARGETS.get(name, (0.0, 0.0))
        met = result.precision >= want_p and result.recall >= want_r
        missed |= not met
        table.add_row(name, str(result.cases), str(result.tp), str(result.fp), str(result.fn),
                      f"{result.precision:.3f}", f"{result.recall:.3f}",
                      f"P≥{want_p:.2f} R≥{want_r:.2f}", "yes" if met else "NO")
    console = Console(width=120)
    console.print(table)
    if args.misses:
        for result in scores.values():
            for miss in result.misses:
                console.print(f"{result.guard}: {miss}", markup=False)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
