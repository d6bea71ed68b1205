"""``accord chaos GRAPH``: a chaos drill, a progress bar, and a report (table or JSON).

The exit code is 1 when a thread was lost or a side effect happened twice, 0 otherwise; bad
options are one line and exit 2.
"""

from __future__ import annotations

import json
import re

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.checkpoints.urls import resolve_url
from accord.cli.app import DB_HELP, app, err, fail, guarded, out
from accord.testing.chaos_drill import ChaosDrill, ChaosSpec
from accord.testing.chaos_report import ChaosReport

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def parse_seconds(text: str) -> float:
    """``200ms``, ``0.2s`` or ``0.2`` -> seconds."""
    found = _DURATION.match(text)
    if found is None:
        fail(f"--latency: {text!r} is not a duration (200ms, 0.5s)")
    value = float(found.group(1))
    return value / 1000 if found.group(2) == "ms" else value


def _table(report: ChaosReport) -> Table:
    table = Table("", "count", title=f"accord chaos {report.graph} on {report.database}: "
                  f"{report.runs} runs, concurrency {report.concurrency}")
    good = lambda n: f"[green]{n}[/]" if n == 0 else f"[bold red]{n}[/]"  # noqa: E731
    for label, value in (
        ("completed", str(report.completed)),
        ("dead-lettered", str(report.dead_lettered)),
        ("failed", str(report.failed)),
        ("lost (must be 0)", good(report.lost)),
        ("duplicate side effects (must be 0)", good(report.duplicate_side_effects)),
        ("retries", str(report.retries)),
        ("fallbacks", str(report.fallbacks)),
        ("breaker trips", str(report.breaker_trips)),
        ("p50 / p95", f"{report.p50_s:.2f} s / {report.p95_s:.2f} s"),
        ("workers killed", str(report.workers_killed)),
        ("db sessions dropped", str(report.db_sessions_dropped)),
        ("recoveries", str(report.recoveries)),
        ("handoffs corrupted / letters retried",
         f"{report.handoffs_damaged} / {report.letters_retried}"),
        ("checkpoints damaged / replays", f"{report.checkpoints_damaged} / {report.replays}"),
        ("model requests / faults", f"{report.model_requests} / {report.model_faults}"),
    ):
        table.add_row(label, value)
    return table


@app.command()
def chaos(
    graph: str = typer.Argument("support", help="The graph to drill (its sample workload)"),
    runs: int = typer.Option(20, "--runs", help="Requests to send"),
    concurrency: int = typer.Option(4, "--concurrency", help="Worker processes"),
    kill_worker: bool = typer.Option(False, "--kill-worker", help="SIGKILL workers mid-step"),
    latency: str = typer.Option("0ms", "--latency", help="Model reply latency (200ms)"),
    error_rate: float = typer.Option(0.0, "--error-rate", help="Share of model errors"),
    hang_rate: float = typer.Option(0.0, "--hang-rate", help="Share of model hangs"),
    corrupt: float = typer.Option(0.0, "--corrupt", help="Share of corrupt replies, handoffs, stored checkpoints and decisions"),
    db_drop: bool = typer.Option(False, "--db-drop", help="Terminate DB sessions (PostgreSQL)"),
    model_timeout: float = typer.Option(3.0, "--model-timeout", help="Model request timeout, s"),
    seed: int = typer.Option(None, "--seed", help="Seed of the drill's random choices"),
    support_db: str = typer.Option(None, "--support-db",
                                   help="The sample company's database (default: a fresh copy)"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
) -> None:
    """Drill GRAPH under faults; report completed, failed, lost and duplicated side effects."""
    if graph != "support":
        fail(f"accord chaos has a workload for the support graph only, not {graph!r}")
    url = resolve_url(db)
    if url.startswith("memory"):
        fail("accord chaos needs a database its worker processes share (sqlite:/// or "
             "postgresql://), not memory://")
    if db_drop and not url.startswith("postgres"):
        fail("--db-drop terminates PostgreSQL sessions; use a postgresql:// database")
    try:
        spec = ChaosSpec(graph=graph, db_url=url, runs=runs, concurrency=concurrency,
                         kill_worker=kill_worker, latency=parse_seconds(latency),
                         error_rate=error_rate, hang_rate=hang_rate, corrupt_rate=corrupt,
                         db_drop=db_drop, model_timeout=model_timeout, seed=seed,
                         support_db=support_db)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")

    async def go() -> ChaosReport:
        with Progress(TextColumn("chaos"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=as_json) as progress:
            task = progress.add_task("threads", total=spec.runs)
            return await ChaosDrill(spec).run(lambda n: progress.update(task, completed=n))

    report = guarded(go())
    if as_json:
        out.print_json(json.dumps(report.model_dump()))
    else:
        out.print(_table(report))
        if report.failures:
            out.print("failed threads by cause:", highlight=False)
            for cause, n in sorted(report.failures.items(), key=lambda p: -p[1]):
                out.print(f"  {n:4d}  {cause}", highlight=False)
        for what, n in report.duplicates.items():
            out.print(f"[bold red]twice:[/] {what} (+{n})", highlight=False)
        if report.lost_threads:
            out.print(f"[bold red]lost:[/] {', '.join(report.lost_threads)}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


__all__ = ["chaos", "parse_seconds"]
