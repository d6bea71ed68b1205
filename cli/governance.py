"""``accord agents …`` and ``accord flags …``: versions, canaries, flags and retirement.

Every command reads the graph's registry (``--graph``, the support example by default) and the
release rows of the database (``--db``); a change is one transaction, audited with ``--by``
(default: the current user). Bad input (an unknown agent or version, a weight out of range,
malformed YAML) is one line and exit code 2; nothing is changed.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from typing import Any

import typer
from rich.table import Table

from accord.agents.canary import stable_version
from accord.agents.compare import compare_versions
from accord.agents.registry import AgentRegistry
from accord.agents.releases import AgentRelease, releases_for
from accord.agents.rollout import promote, rollback, set_enabled, start_canary
from accord.agents.spec import load_specs
from accord.agents.versions import as_dict
from accord.cli.app import DB_HELP, app, fail, guarded, out
from accord.engine.session import Session
from accord.graphs.builder import Workflow
from accord.graphs.catalog import load_workflow
from accord.graphs.retirement import retire_agent
from accord.records import ThreadStatus

agents_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                         help="Agents: responsibility matrix, versions, canaries, retirement.")
flags_app = typer.Typer(no_args_is_help=True, help="Feature flags of agents (on/off).")
app.add_typer(agents_app, name="agents")
app.add_typer(flags_app, name="flags")

GRAPH_OPT = typer.Option("support", "--graph", help="The graph whose agents to use")
DB_OPT = typer.Option(None, "--db", help=DB_HELP)
BY_OPT = typer.Option(None, "--by", help="Who makes the change (default: current user)")


def _declared(workflow: Workflow) -> dict[str, str]:
    """Agent id -> the version the workflow declares for it."""
    return {spec.id: spec.version for spec in workflow.agent_nodes().values()}


def _row(registry: AgentRegistry, declared: dict[str, str], release: AgentRelease,
         agent: str) -> dict[str, Any]:
    versions = [s.version for s in registry.versions(agent)]
    base = declared.get(agent) or versions[-1]
    return {
        "agent": agent,
        "versions": versions,
        "stable": stable_version(release, base, versions),
        "canary": release.canary,
        "weight": release.weight,
        "enabled": release.enabled,
        "retired": release.retired,
        "withdrawn": list(release.withdrawn),
        "updated_by": release.updated_by,
        "updated_at": release.updated_at,
    }


def _with_store(db: str | None, fn: Callable[[Any], Any]) -> Any:
    """``fn(saver)`` off the event loop, on the database of one command."""

    async def go() -> Any:
        async with Session.open(db) as session:
            return await session.saver._offload(fn, session.saver)

    return guarded(go())


def _workflow(graph: str) -> Workflow:
    async def go() -> Workflow:
        return load_workflow(graph)

    return guarded(go())


def _weight(text: str) -> float:
    try:
        return float(text.strip().removesuffix("%"))
    except ValueError:
        fail(f"--weight {text!r} is not a percentage (for example 20 or 20%)")


def _who(by: str | None) -> str:
    return by or getpass.getuser()


def _print_row(row: dict[str, Any]) -> None:
    canary = f"{row['canary']} at {row['weight']:g}%" if row["canary"] else "-"
    out.print(f"{row['agent']}: stable {row['stable']}, canary {canary}, "
              f"{'on' if row['enabled'] else 'off'}{', retired' if row['retired'] else ''}",
              highlight=False)


def _change(graph: str, db: str | None, agent: str,
            op: Callable[[Any, AgentRegistry], AgentRelease]) -> None:
    workflow = _workflow(graph)
    release = _with_store(db, lambda saver: op(releases_for(saver), workflow.registry))
    _print_row(_row(workflow.registry, _declared(workflow), release, agent))


@agents_app.callback()
def agents(
    ctx: typer.Context,
    graph_name: str = GRAPH_OPT,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The agents of a graph and the responsibility matrix (or a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return

    async def go() -> Any:
        registry = load_workflow(graph_name).registry
        return registry, registry.owners()

    registry, owners = guarded(go())
    if as_json:
        data = {
            "agents": [{"id": s.id, "version": s.version, "kind": s.kind, "purpose": s.purpose,
                        "responsibilities": list(s.responsibilities), "priority": s.priority,
                        "fallback": [str(h) for h in s.fallback]} for s in registry.latest()],
            "owners": {r: s.id for r, s in owners.items()},
        }
        out.print_json(json.dumps(data))
        return
    out.print(registry.matrix())


@agents_app.command("list")
def list_agents(graph: str = GRAPH_OPT, db: str = DB_OPT,
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Each agent with its versions, stable and canary version, weight and flag."""
    workflow = _workflow(graph)
    rows_ = _with_store(db, lambda saver: releases_for(saver).all())
    declared = _declared(workflow)
    rows = [_row(workflow.registry, declared, rows_.get(s.id) or AgentRelease(agent=s.id), s.id)
            for s in workflow.registry.latest()]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("agent", "versions", "stable", "canary", "weight", "flag", "retired")
    for row in rows:
        table.add_row(row["agent"], ", ".join(row["versions"]), row["stable"],
                      row["canary"] or "", f"{row['weight']:g}%" if row["canary"] else "",
                      "on" if row["enabled"] else "off", "yes" if row["retired"] else "")
    out.print(table)


@agents_app.command()
def canary(agent: str, version: str,
           weight: str = typer.Option(..., "--weight", help="Percent of new threads, 0-100"),
           graph: str = GRAPH_OPT, db: str = DB_OPT, by: str = BY_OPT) -> None:
    """Send WEIGHT percent of new threads to VERSION of AGENT."""
    share = _weight(weight)
    _change(graph, db, agent,
            lambda store, reg: start_canary(store, reg, agent, version, share, by=_who(by)))


@agents_app.command("promote")
def promote_cmd(agent: str, version: str, graph: str = GRAPH_OPT, db: str = DB_OPT,
                by: str = BY_OPT) -> None:
    """Make VERSION the stable version of AGENT for every new thread."""
    _change(graph, db, agent, lambda store, reg: promote(store, reg, agent, version, by=_who(by)))


@agents_app.command("rollback")
def rollback_cmd(agent: str, graph: str = GRAPH_OPT, db: str = DB_OPT,
                 by: str = BY_OPT) -> None:
    """Withdraw AGENT's canary (or its last promotion): new threads get the stable version."""
    _change(graph, db, agent, lambda store, reg: rollback(store, reg, agent, by=_who(by)))


@agents_app.command()
def compare(agent: str, graph: str = GRAPH_OPT, db: str = DB_OPT,
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Error rate and tokens per version of AGENT, from the audit log."""
    workflow = _workflow(graph)
    if agent not in workflow.registry:
        fail(f"unknown agent {agent!r} in graph {graph}")
    stats = [s.as_dict() for s in _with_store(db, lambda saver: compare_versions(saver, agent))]
    if as_json:
        out.print_json(json.dumps(stats))
        return
    table = Table("version", "threads", "calls", "errors", "error rate", "tokens", "tokens/call",
                  title=f"{agent} by version")
    for s in stats:
        table.add_row(s["version"], str(s["threads"]), str(s["calls"]), str(s["errors"]),
                      f"{s['error_rate']:.1%}", str(s["tokens"]), f"{s['tokens_per_call']:g}")
    out.print(table)


@agents_app.command()
def changelog(agent: str = typer.Argument(None), graph: str = GRAPH_OPT, db: str = DB_OPT,
              as_json: bool = typer.Option(False, "--json")) -> None:
    """The versions of AGENT (or of every agent) with their contract changes, and every
    release change (canary, promotion, rollback, flag, retirement) with who and when."""
    workflow = _workflow(graph)
    entries = guarded(_async(lambda: workflow.registry.changelog(agent)))
    changes = _with_store(db, lambda saver: releases_for(saver).changes(agent))
    if as_json:
        out.print_json(json.dumps({
            "versions": [{"agent": e.agent, "version": e.version, "previous": e.previous,
                          "notes": e.notes, "changes": [as_dict(c) for c in e.changes]}
                         for e in entries],
            "releases": [c.model_dump() for c in changes]}))
        return
    for e in entries:
        what = "; ".join(("BREAKING " if c.breaking else "") + c.describe() for c in e.changes)
        head = f"{e.agent} {e.version}" + (f" (from {e.previous})" if e.previous else "")
        out.print(f"[bold]{head}[/] {e.notes.strip()} {what}".rstrip(), highlight=False)
    for c in changes:
        out.print(f"{c.at[:19]} {c.by}: {c.agent} {c.field} {json.dumps(c.old)} -> "
                  f"{json.dumps(c.new)}", highlight=False)


@agents_app.command()
def retire(agent: str, graph: str = GRAPH_OPT, db: str = DB_OPT, by: str = BY_OPT) -> None:
    """Retire AGENT; refused while a transition, a fallback or a waiting thread needs it."""
    workflow = _workflow(graph)

    def go(saver: Any) -> AgentRelease:
        waiting = saver.threads.list(status=ThreadStatus.INTERRUPTED)
        return retire_agent(releases_for(saver), workflow, agent, waiting, by=_who(by))

    _with_store(db, go)
    out.print(f"{agent}: retired", highlight=False)


@agents_app.command()
def check(path: str = typer.Argument(..., help="A YAML file of agent specs, or a folder")) -> None:
    """Load agent specs and check every version against the one before it."""

    def go() -> AgentRegistry:
        return AgentRegistry(load_specs(path))

    registry = guarded(_async(go))
    entries = registry.changelog()
    out.print(f"{len(entries)} agent versions, no breaking change without a major bump",
              highlight=False)


async def _async(fn: Callable[[], Any]) -> Any:
    return fn()


@flags_app.command("list")
def flags_list(graph: str = GRAPH_OPT, db: str = DB_OPT,
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Each agent's flag, with who changed it last."""
    workflow = _workflow(graph)
    rows_ = _with_store(db, lambda saver: releases_for(saver).all())
    rows = [{"agent": s.id, "enabled": (rows_.get(s.id) or AgentRelease(agent=s.id)).enabled,
             "updated_by": (rows_.get(s.id) or AgentRelease(agent=s.id)).updated_by}
            for s in workflow.registry.latest()]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("agent", "flag", "changed by")
    for row in rows:
        table.add_row(row["agent"], "on" if row["enabled"] else "off", row["updated_by"] or "")
    out.print(table)


@flags_app.command("set")
def flags_set(agent: str, state: str = typer.Argument(..., help="on or off"),
              graph: str = GRAPH_OPT, db: str = DB_OPT, by: str = BY_OPT) -> None:
    """Switch AGENT on or off (off: its fallback answers), effective on the next run."""
    if state not in ("on", "off"):
        fail(f"flag state {state!r} is not 'on' or 'off'")
    _change(graph, db, agent,
            lambda store, reg: set_enabled(store, reg, agent, state == "on", by=_who(by)))


__all__ = ["agents_app", "flags_app"]
