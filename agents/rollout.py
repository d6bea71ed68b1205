"""Changing how agents are released: canary, promote, roll back, switch on or off.

Each operation checks its arguments against the registry (an unknown agent or version, a weight
out of range raise :class:`~accord.agents.releases.ReleaseError` and change nothing), then
changes the agent's release row in one transaction; the change log records who, when and
old -> new for every field.
"""

from __future__ import annotations

from accord.agents.registry import AgentRegistry, RegistryError
from accord.agents.releases import AgentRelease, ReleaseError, ReleaseStore, check_weight


def _known(registry: AgentRegistry, agent: str, version: str | None = None) -> None:
    try:
        registry.get(agent, version)
    except RegistryError as exc:
        raise ReleaseError(str(exc)) from None


def _without(versions: tuple[str, ...], version: str) -> tuple[str, ...]:
    return tuple(v for v in versions if v != version)


def start_canary(store: ReleaseStore, registry: AgentRegistry, agent: str, version: str,
                 weight: float, *, by: str) -> AgentRelease:
    """Send ``weight`` percent of new threads to ``version`` of ``agent``."""
    share = check_weight(weight, agent)
    _known(registry, agent, version)
    if store.get(agent).retired:
        raise ReleaseError(f"agent {agent} is retired")
    return store.change(agent, by, lambda r: r.model_copy(update={
        "canary": version, "weight": share, "withdrawn": _without(r.withdrawn, version)}))


def promote(store: ReleaseStore, registry: AgentRegistry, agent: str, version: str, *,
            by: str) -> AgentRelease:
    """Make ``version`` the stable version: every new thread gets it; the canary ends."""
    _known(registry, agent, version)
    if store.get(agent).retired:
        raise ReleaseError(f"agent {agent} is retired")
    return store.change(agent, by, lambda r: r.model_copy(update={
        "stable": version, "canary": None, "weight": 0.0,
        "withdrawn": _without(r.withdrawn, version)}))


def rollback(store: ReleaseStore, registry: AgentRegistry, agent: str, *,
             by: str) -> AgentRelease:
    """Withdraw the canary (or, with none, the last promotion): new threads get the stable
    version, and threads pinned to the withdrawn version move back to it on their next run."""
    _known(registry, agent)
    release = store.get(agent)
    if release.canary is not None:
        gone = release.canary
        return store.change(agent, by, lambda r: r.model_copy(update={
            "canary": None, "weight": 0.0, "withdrawn": (*_without(r.withdrawn, gone), gone)}))
    if release.stable is not None:
        promoted = [c for c in store.changes(agent) if c.field == "stable"]
        before = promoted[-1].old if promoted else None
        gone = release.stable
        return store.change(agent, by, lambda r: r.model_copy(update={
            "stable": before, "withdrawn": (*_without(r.withdrawn, gone), gone)}))
    raise ReleaseError(f"agent {agent} has no canary or promotion to roll back")


def set_enabled(store: ReleaseStore, registry: AgentRegistry, agent: str, enabled: bool, *,
                by: str) -> AgentRelease:
    """Switch an agent on or off (a disabled agent's tasks go to its fallback)."""
    _known(registry, agent)
    return store.change(agent, by, lambda r: r.model_copy(update={"enabled": enabled}))


__all__ = ["promote", "rollback", "set_enabled", "start_canary"]
