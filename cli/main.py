"""The ``accord`` command line."""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from typing import Any

import typer
from rich.prompt import Prompt
from rich.table import Table

from accord.cli.app import DB_HELP, GRAPH_HELP, app, emit, err, fail, guarded, out
from accord.cli.render import (
    LiveView,
    actions_of,
    approval_panel,
    audit_table,
    hops_text,
    pending_line,
)
from accord.engine.session import RunOutcome, Session, tasks_of
from accord.errors import AccordError
from accord.graphs.catalog import CATALOG, load_workflow
from accord.graphs.hitl import ALL_DECISIONS, parse_decision
from accord.records import ThreadStatus
from accord.resilience.escalation import parse_answer


def _ask_one(request: dict[str, Any], allowed: list[str], by: str, many: bool) -> dict[str, Any]:
    """One LangChain decision on one held action, asked at the terminal."""
    prefix = f"{request.get('name')}: " if many else ""
    choice = Prompt.ask(f"{prefix}{' / '.join(allowed)}", choices=allowed, console=err)
    if choice == "approve":
        return {"type": "approve"}
    if choice == "reject":
        return {"type": "reject", "message": Prompt.ask("reason", console=err)}
    if choice == "respond":
        return {"type": "respond", "message": Prompt.ask("answer for the agent", console=err)}
    while True:
        raw = Prompt.ask(f"new args as JSON, merged over {json.dumps(request.get('args'))}",
                         console=err)
        try:
            args = json.loads(raw)
        except json.JSONDecodeError as exc:
            err.print(f"[red]not valid JSON: {exc.msg}[/]")
            continue
        if isinstance(args, dict):
            return {"type": "edit", "edited_action": {"name": request.get("name"),
                                                      "args": {**request.get("args", {}), **args}}}
        err.print("[red]the args must be a JSON object[/]")


def ask_decision(payload: dict[str, Any], by: str) -> dict[str, Any]:
    """The decisions on an approval, one per held action (LangChain's ``{"decisions": [...]}``);
    for a task escalated to a person, the person's reply or refusal."""
    if payload.get("type") == "escalation":
        choice = Prompt.ask("reply / reject", choices=["reply", "reject"], console=err)
        if choice == "reply":
            return {"decision": "reply", "reply": Prompt.ask("reply", console=err), "by": by}
        return {"decision": "reject", "reason": Prompt.ask("reason", console=err), "by": by}
    held = actions_of(payload)
    decisions = [_ask_one(request, list(config.get("allowed_decisions") or ALL_DECISIONS), by,
                          len(held) > 1) for request, config in held]
    return {"decisions": decisions, "by": by}


def interactive(no_input: bool, as_json: bool) -> bool:
    return not no_input and not as_json and sys.stdin.isatty()


async def _run_and_approve(session: Session, first: Any, view: LiveView, by: str, ask: bool,
                           user: str | None = None) -> RunOutcome:
    outcome = await first
    if outcome.status == "failed" and outcome.interrupt is None:
        return outcome
    while ask and outcome.status == "interrupted" and outcome.interrupt is not None:
        view.approval(outcome.interrupt)
        decision = ask_decision(outcome.interrupt, by)
        outcome = await session.resume(outcome.thread_id, decision, view, user)
    if outcome.status == "interrupted" and outcome.interrupt is not None and not ask:
        view.approval(outcome.interrupt)
    return outcome


@app.command()
def run(
    graph: str = typer.Argument(..., help=f"Graph: a name ({', '.join(CATALOG)}), a graph id of ./langgraph.json, path/to/file.py:attr or module:attr"),
    message: str = typer.Argument(..., help="The request"),
    thread: str = typer.Option(None, "--thread", help="Thread id (new one if omitted)"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object, no live output"),
    no_input: bool = typer.Option(False, "--no-input", help="Never prompt; leave approvals waiting"),
    by: str = typer.Option(None, "--by", help="Approver name for interactive approvals"),
    user: str = typer.Option(None, "--user", help="The end user the request is for "
                             "(configurable.user_id: permissions, rate limits, budgets)"),
) -> None:
    """Run GRAPH on MESSAGE, showing each step live."""
    thread = thread or f"t-{uuid.uuid4().hex[:12]}"
    if not message.strip():
        fail("the message is empty")
    view = LiveView(err if as_json else out, enabled=not as_json)
    if graph == "support" and not as_json:
        from accord.graphs.support import mode_line

        out.print(f"[dim]{mode_line()}[/]", highlight=False)
    ask = interactive(no_input, as_json)

    async def go() -> RunOutcome:
        async with Session.open(db) as session:
            return await _run_and_approve(session, session.run(graph, message, thread, view, user),
                                          view, by or getpass.getuser(), ask, user)

    emit(guarded(go()), as_json)


@app.command()
def resume(
    thread: str = typer.Argument(..., help="Thread id"),
    approve: bool = typer.Option(False, "--approve", help="Approve the pending action"),
    reject: str = typer.Option(None, "--reject", metavar="REASON", help="Reject it, with a reason"),
    edit: str = typer.Option(None, "--edit", metavar="JSON", help="Approve with edited arguments"),
    respond: str = typer.Option(None, "--respond", metavar="MESSAGE",
                                help="Answer the agent in place of the tool (it does not run), "
                                "or answer a task escalated to a person"),
    decisions: str = typer.Option(None, "--decisions", metavar="JSON",
                                  help='LangChain\'s {"decisions": [...]}, one per held action'),
    reply: str = typer.Option(None, "--reply", metavar="TEXT",
                              help="The same as --respond, for a task escalated to a person"),
    by: str = typer.Option(None, "--by", help="Who decides (default: current user)"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
    no_input: bool = typer.Option(False, "--no-input"),
    graph_ref: str = typer.Option(None, "--graph", help=GRAPH_HELP),
    user: str = typer.Option(None, "--user", help="The end user the run is for "
                             "(configurable.user_id)"),
) -> None:
    """Answer a pending approval or escalation, or (without a decision) continue a thread cut
    short by a crash."""
    chosen = [name for name, on in (("--approve", approve), ("--reject", reject is not None),
                                     ("--edit", edit is not None),
                                     ("--respond", respond is not None),
                                     ("--decisions", decisions is not None),
                                     ("--reply", reply is not None)) if on]
    if len(chosen) > 1:
        fail(f"choose one of {', '.join(chosen)}")
    who = by or getpass.getuser()
    decision: dict[str, Any] | None = None
    try:
        if approve:
            decision = parse_decision({"decision": "approve", "by": who}).model_dump(exclude_none=True)
        elif reject is not None:
            decision = parse_decision({"decision": "reject", "reason": reject, "by": who}).model_dump(exclude_none=True)
        elif edit is not None:
            try:
                args = json.loads(edit)
            except json.JSONDecodeError as exc:
                fail(f"--edit is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})")
            decision = parse_decision({"decision": "edit", "args": args, "by": who}).model_dump(exclude_none=True)
        elif respond is not None:
            decision = parse_decision({"decision": "respond", "message": respond, "by": who}).model_dump(exclude_none=True)
        elif decisions is not None:
            try:
                given = json.loads(decisions)
            except json.JSONDecodeError as exc:
                fail(f"--decisions is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})")
            given = {"decisions": given} if isinstance(given, list) else given
            if not isinstance(given, dict) or not isinstance(given.get("decisions"), list):
                fail('--decisions must be {"decisions": [...]} or a list of decisions')
            decision = {**given, "by": given.get("by") or who}
        elif reply is not None:
            decision = parse_answer({"decision": "reply", "reply": reply, "by": who}).model_dump(exclude_none=True)
    except AccordError as exc:
        fail(str(exc))
    view = LiveView(err if as_json else out, enabled=not as_json)
    ask = interactive(no_input, as_json)

    async def go() -> RunOutcome:
        async with Session.open(db, graph_ref=graph_ref) as session:
            return await _run_and_approve(session, session.resume(thread, decision, view, user),
                                          view, who, ask, user)

    outcome = guarded(go())
    emit(outcome, as_json)
    refused = (outcome.interrupt or {}).get("error") if outcome.status == "interrupted" else None
    if decision is not None and refused:
        # the engine asked again: the decision was not used, the approval still waits
        waits = "the escalation" if outcome.interrupt.get("type") == "escalation" else "the approval"
        fail(f"{refused}; {waits} still waits")


@app.command()
def threads(
    status: str = typer.Option(None, "--status", help="running, interrupted, done or failed"),
    limit: int = typer.Option(50, "--limit"),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List threads (newest first), optionally by status."""
    if status is not None and status not in {s.value for s in ThreadStatus}:
        fail(f"unknown status {status!r}; use running, interrupted, done or failed")

    async def go() -> list:
        async with Session.open(db) as session:
            return await session.saver._offload(session.saver.threads.list, status, limit)

    rows = [r.as_dict() for r in guarded(go())]
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("thread", "graph", "status", "updated", "pending / error")
    for row in rows:
        pending = row["pending"] or {}
        what = pending_line(pending) if pending else ""
        if pending and not what and pending.get("type") == "escalation":
            what = f"escalated: {pending.get('query')}"
        table.add_row(row["thread_id"], row["graph"] or "", row["status"],
                      row["updated_at"][:19], what or (row["error"] or ""))
    out.print(table)


@app.command()
def show(
    thread: str = typer.Argument(...),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
    graph_ref: str = typer.Option(None, "--graph", help=GRAPH_HELP),
) -> None:
    """Show a thread's state, tasks, audit trail and checkpoint history."""

    async def go() -> Any:
        async with Session.open(db, graph_ref=graph_ref) as session:
            return await session.show(thread)

    outcome, snapshot, history, audit = guarded(go())
    values = snapshot.values
    tasks = tasks_of(values, audit)
    if as_json:
        data = {
            **outcome.as_dict(),
            "tasks": {t["id"]: t for t in tasks if t.get("id")},
            "outputs": values.get("outputs"),
            "context": values.get("context"),
            "audit": [e.model_dump() for e in audit],
            "errors": values.get("errors"),
            "messages": [{"type": m.type, "name": getattr(m, "name", None), "content": m.content}
                         for m in values.get("messages", [])],
            "history": [{"checkpoint_id": h.config["configurable"]["checkpoint_id"],
                         "step": h.metadata.get("step"), "next": list(h.next),
                         "created_at": h.created_at} for h in history],
        }
        out.print_json(json.dumps(data, default=str))
        return
    out.print(f"[bold]{thread}[/] ({outcome.graph}) [bold]{outcome.status}[/]")
    if outcome.error:
        out.print(f"[red]{outcome.error}[/]", highlight=False)
    if outcome.interrupt:
        out.print(approval_panel(outcome.interrupt))
    for message in values.get("messages", []):
        out.print(f"  [dim]{message.type}[/] {getattr(message, 'name', None) or ''}: {message.text}", highlight=False)
    table = Table("task", "agent", "status", "result", "hops [cause failed/calls]", title="tasks")
    for task in tasks:
        table.add_row((task.get("id") or "")[:12], task.get("agent") or "", task.get("status") or "",
                      (task.get("result") or "")[:70], hops_text(task))
    out.print(table)
    out.print(audit_table(audit))
    out.print(f"{len(history)} checkpoints; next: {', '.join(outcome.next) or '-'}")


@app.command()
def graph(name: str = typer.Argument(..., help="Graph name, langgraph.json id, file.py:attr or module:attr")) -> None:
    """Print the graph as a mermaid diagram (exactly the allowed transitions)."""
    async def go() -> str:
        return load_workflow(name).mermaid()

    print(guarded(go()))


def main() -> None:
    from accord.cli import (  # noqa: F401  (registers agents, chaos, console-user, dlq, flags, health, metrics-serve, serve, history, replay, fork, prune, relay, usage, worker)
        chaos,
        console,
        dlq,
        governance,
        health,
        metrics,
        relay,
        serve,
        timetravel,
        usage,
        worker,
    )

    try:
        app()
    except KeyboardInterrupt:
        fail("interrupted; saved state is kept", 130)


if __name__ == "__main__":
    main()
