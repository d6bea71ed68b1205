"""The harness: run the sections, write ``REPORT.md`` and plots, print the tables."""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import report
from benchmarks.env import FULL, QUICK, BenchEnv, postgres_admin_url
from benchmarks.stats import Section

SECTIONS = {
    1: ("s1_overhead", "Orchestration overhead", False),
    2: ("s2_calls", "Model calls and tokens per request", False),
    3: ("s3_throughput", "Throughput under concurrency on PostgreSQL", True),
    4: ("s4_resume", "Resume latency", False),
    5: ("s5_waiting", "Many waiting threads", False),
    6: ("s6_storage", "Storage", False),
    7: ("s7_lines", "Lines of code: the publishing desk", False),
    8: ("s8_scaling", "Scaling out: worker processes on one PostgreSQL", True),
    9: ("s9_locust", "Load test: Locust through the runs API", True),
}
"""number -> (module, title, needs PostgreSQL)."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: only checks that the harness runs (CI)")
    parser.add_argument("--only", type=int, nargs="+", choices=sorted(SECTIONS),
                        help="run only these sections")
    parser.add_argument("--postgres", help="PostgreSQL admin URL (scratch databases are created "
                        "and dropped there); default $ACCORD_BENCH_POSTGRES_URL, "
                        "$ACCORD_TEST_POSTGRES_URL, else (full runs) " "postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for REPORT.md and plots/ (default: benchmarks/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console()
    postgres, note = postgres_admin_url(args.quick, args.postgres)
    args.out.mkdir(parents=True, exist_ok=True)
    env = BenchEnv(QUICK if args.quick else FULL, args.quick, postgres, note, args.out)
    console.print(f"accord benchmarks ({'quick' if args.quick else 'full'}), {note}")
    started = time.perf_counter()
    sections: list[Section] = []
    failed = False
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            for number in args.only or sorted(SECTIONS):
                module, title, needs_pg = SECTIONS[number]
                if (needs_pg or number == 3) and postgres is None:
                    sections.append(Section(number, title, "", skipped="no PostgreSQL"))
                    continue
                try:
                    run = importlib.import_module(f"benchmarks.{module}").run
                    sections.append(run(env, progress))
                except Exception as exc:  # noqa: BLE001 - a broken section is reported, the others still run
                    failed = True
                    console.print(traceback.format_exc())
                    sections.append(Section(number, title, "",
                                            skipped=f"failed: {type(exc).__name__}: {exc}"))
    finally:
        env.close()
    path = report.write(env, sections, time.perf_counter() - started, partial=bool(args.only))
    report.show(console, sections)
    console.print(f"\nreport: {path}")
    return 1 if failed else 0
