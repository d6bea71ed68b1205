"""Versions and flags at an agent node: which version runs, and whether it may run at all.

Every call of an agent node, whatever started the run (``invoke``/``stream`` from Python, the
CLI, ``langgraph dev``, a worker), asks :class:`AgentVersions` first:

- the agent's release row is read from the run's database (once per run; ``memory://`` and
  savers that are not accord's keep the rows in the process);
- the thread's version is the one recorded in its state (``versions``), or, for a thread that
  has not run the agent yet, the stable or canary version (``accord.agents.canary``); the
  choice is written to the state with the step, so it holds across resumes and processes;
- a disabled or retired agent is not called: its declared fallback answers (``fallback``
  caused by ``AgentDisabled``);
- each call leaves an ``agent_run`` audit event (version, how it was chosen, outcome, tokens),
  from which ``accord agents compare`` reads error rate and cost per version.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from langchain_core.callbacks import get_usage_metadata_callback
from langgraph.config import get_config
from langgraph.types import Command

from accord.agents.canary import VersionChoice, VersionPick, choose_version
from accord.agents.flags import AgentDisabled, disabled_because
from accord.agents.releases import AgentRelease, releases_for
from accord.agents.runner import AgentRunner
from accord.checkpoints.runs import RUN_KEY, RunHandle
from accord.graphs.state import thread_id
from accord.records import AuditKind, audit_event

RUNS_CACHED = 64
"""Runs whose release rows a node keeps (one read per run, not one per agent call)."""


class CallOutcome(StrEnum):
    """How one agent call ended, as ``agent_run`` records it."""

    OK = "ok"
    """The chosen version answered."""
    FALLBACK = "fallback"
    """It failed and its fallback answered."""
    FAILED = "failed"
    """It failed and so did its fallback (or it has none)."""
    DISABLED = "disabled"
    """It was switched off or retired: not called."""


def _run() -> RunHandle | None:
    try:
        handle = get_config().get("configurable", {}).get(RUN_KEY)
    except RuntimeError:  # not inside a graph run
        return None
    return handle if isinstance(handle, RunHandle) else None


@dataclass(frozen=True)
class Picked:
    """What one call of the node runs."""

    pick: VersionPick
    """The version and how it was chosen."""
    runner: AgentRunner
    """The runner of that version."""
    chain: tuple[Any, ...]
    """Its fallback chain (``accord.graphs.agent_node.Link``), without the agents that are
    switched off too."""
    blocked: AgentDisabled | None
    """Set when the agent may not run now: the fallback answers instead."""


@dataclass
class AgentVersions:
    """The deployed versions of one agent node and how a call picks one."""

    agent: str
    """The agent id."""
    declared: str
    """The version the workflow declares (stable until another is promoted)."""
    runners: Mapping[str, AgentRunner]
    """A runner per deployed version."""
    chains: Mapping[str, tuple[Any, ...]]
    """Each version's fallback chain (``accord.graphs.agent_node.Link``)."""
    _cache: OrderedDict[str, dict[str, AgentRelease]] = field(default_factory=OrderedDict)

    async def releases(self) -> dict[str, AgentRelease]:
        """The release rows as this run sees them (read on the run's first agent call)."""
        handle = _run()
        if handle is None or handle.saver is None:
            return {}
        run_id = handle.spec.run_id
        found = self._cache.get(run_id)
        if found is None:
            found = await asyncio.to_thread(releases_for(handle.saver).all)
            self._cache[run_id] = found
            while len(self._cache) > RUNS_CACHED:
                self._cache.popitem(last=False)
        return found

    async def pick(self, state: Mapping[str, Any]) -> Picked:
        rows = await self.releases()
        release = rows.get(self.agent) or AgentRelease(agent=self.agent)
        pinned = (state.get("versions") or {}).get(self.agent)
        pick = choose_version(thread_id=thread_id(), release=release, declared=self.declared,
                              deployed=self.runners, pinned=pinned)
        runner = self.runners[pick.version]
        chain = tuple(link for link in self.chains.get(pick.version, ())
                      if link.runner is None or not disabled_because(rows.get(link.agent)))
        why = disabled_because(release)
        return Picked(pick, runner, chain, AgentDisabled(self.agent, why) if why else None)

    def noted(self, command: Command, picked: Picked, tokens: int, node: str,
              task_id: str | None = None) -> Command:
        """``command`` with the thread's version recorded and the call's ``agent_run`` event."""
        update = command.update
        if not isinstance(update, dict) or "tasks" not in update:
            return command  # no agent ran (held calls passed on to another approval node)
        audit = update.get("audit") if isinstance(update.get("audit"), list) else []
        spec = picked.runner.spec
        outcome = CallOutcome.OK
        for event in audit:
            if event.get("agent") != spec.id:
                continue
            if event.get("kind") == AuditKind.FALLBACK:
                outcome = CallOutcome.DISABLED if picked.blocked else CallOutcome.FALLBACK
            elif event.get("kind") == AuditKind.AGENT_FAILED:
                outcome = CallOutcome.DISABLED if picked.blocked else CallOutcome.FAILED
        pick = picked.pick
        extra = {"previous": pick.previous} if pick.previous else {}
        event = audit_event(AuditKind.AGENT_RUN, node=node, agent=spec.id, task_id=task_id,
                            version=spec.version,
                            choice=pick.choice.value, outcome=outcome.value, tokens=tokens, **extra)
        update["audit"] = [event, *audit]
        if pick.choice is not VersionChoice.PINNED:
            update["versions"] = {self.agent: pick.version}
        return command


async def run_versioned(node: Any, versions: AgentVersions, state: dict[str, Any]) -> Command:
    """Run ``node`` (an ``AgentNode``) with the version and flag this call gets."""
    picked = await versions.pick(state)
    chosen = replace(node, runner=picked.runner, chain=picked.chain, versions=None,
                     blocked=picked.blocked)
    with get_usage_metadata_callback() as usage:
        command = await chosen.enter(state)
    tokens = sum(int(u.get("total_tokens", 0)) for u in usage.usage_metadata.values())
    return versions.noted(command, picked, tokens, node.name, state.get("active_task"))


__all__ = ["AgentVersions", "Picked", "CallOutcome", "run_versioned"]
