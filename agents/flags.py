"""Feature flags of agents: whether an agent may run now.

The flag is a column of the agent's release row (``accord.agents.releases``), read at run time
by the agent node, so switching an agent off takes effect on the next run with no redeploy, and
every switch is in the release change log (who, when, old -> new). A disabled agent's task goes
to its declared fallback, recorded as a ``fallback`` caused by :class:`AgentDisabled`.
"""

from __future__ import annotations

from accord.agents.releases import AgentRelease
from accord.errors import AccordError


class AgentDisabled(AccordError):
    """The agent is switched off by its flag, or retired; it was not called."""

    def __init__(self, agent: str, why: str) -> None:
        self.agent = agent
        super().__init__(f"agent {agent} is {why}")


def disabled_because(release: AgentRelease | None) -> str | None:
    """Why the agent may not run now (``disabled by its flag``, ``retired``), or None."""
    if release is None:
        return None
    if release.retired:
        return "retired"
    if not release.enabled:
        return "disabled by its flag"
    return None


__all__ = ["AgentDisabled", "disabled_because"]
