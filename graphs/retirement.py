"""Retiring an agent: refused while anything still needs it.

An agent is still needed while a transition of the workflow targets a node that runs it, while
another agent falls back to it, or while a thread waits at an approval that returns to it (the
thread index's pending approval names the agent that proposed it) or waits in a graph that uses
it. :func:`retire_agent` lists every such reason in one :class:`RetirementRefused`; otherwise it
marks the agent retired in its release row (audited like every release change): a retired agent
never runs again.
"""

from __future__ import annotations

from collections.abc import Iterable

from accord.agents.registry import RegistryError
from accord.agents.releases import AgentRelease, ReleaseError, ReleaseStore
from accord.checkpoints.threads import ThreadRecord
from accord.errors import AccordError
from accord.graphs.builder import Workflow


class RetirementRefused(AccordError):
    """The agent cannot be retired: something still needs it (the message says what)."""

    def __init__(self, agent: str, blockers: list[str]) -> None:
        self.agent, self.blockers = agent, blockers
        super().__init__(f"cannot retire agent {agent}: {'; '.join(blockers)}")


def retirement_blockers(workflow: Workflow, agent: str,
                        waiting: Iterable[ThreadRecord]) -> list[str]:
    """Why ``agent`` cannot be retired from ``workflow`` now (empty: it can)."""
    blockers: list[str] = []
    agents = workflow.agent_nodes()
    nodes = {node for node, spec in agents.items() if agent in (spec.id, node)}
    for source, target in sorted(workflow.table.pairs()):
        if target in nodes:
            blockers.append(f"transition {source} -> {target} targets it")
    users = set()
    for spec in {s.key: s for node_spec in agents.values()
                 for s in (node_spec, *workflow.registry.versions(node_spec.id))}.values():
        if any(hop.agent == agent for hop in spec.fallback):
            users.add(spec.id)
            blockers.append(f"agent {spec.key} falls back to it")
    used = bool(nodes or users)
    for record in waiting:
        pending = record.pending if isinstance(record.pending, dict) else {}
        if pending.get("agent") == agent:
            blockers.append(f"thread {record.thread_id} waits at an approval it proposed")
        elif used and workflow.source is not None and record.graph == workflow.source:
            blockers.append(f"thread {record.thread_id} waits in graph {record.graph}, which uses it")
    return blockers


def retire_agent(store: ReleaseStore, workflow: Workflow, agent: str,
                 waiting: Iterable[ThreadRecord], *, by: str) -> AgentRelease:
    """Retire ``agent`` (its canary ends too); :class:`RetirementRefused` while it is needed."""
    try:
        workflow.registry.get(agent)
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from None
    blockers = retirement_blockers(workflow, agent, waiting)
    if blockers:
        raise RetirementRefused(agent, blockers)
    return store.change(agent, by, lambda r: r.model_copy(
        update={"retired": True, "canary": None, "weight": 0.0}))


__all__ = ["RetirementRefused", "retire_agent", "retirement_blockers"]
