"""Which version of an agent a thread runs: pinned, stable or canary.

A thread keeps the version it was first given (the choice is recorded in its state,
``versions``), so a canary never changes under a thread mid-conversation. A new thread gets
the canary version when its bucket, a hash of the thread id and the agent id, falls below the
canary's weight: deterministic, so every process, replica and entry point makes the same choice
for the same thread, and the share of new threads converges on the weight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from accord.agents.releases import AgentRelease


class VersionChoice(StrEnum):
    """How a thread came to run a version."""

    PINNED = "pinned"
    """The version recorded for the thread earlier."""
    STABLE = "stable"
    """A new thread, outside the canary's share."""
    CANARY = "canary"
    """A new thread, inside the canary's share."""
    REPINNED = "repinned"
    """The recorded version was rolled back or is no longer deployed: chosen again."""


@dataclass(frozen=True)
class VersionPick:
    """The version one run of an agent uses, and why."""

    version: str
    """The chosen version."""
    choice: VersionChoice
    """How it was chosen."""
    previous: str | None = None
    """For ``repinned``: the version the thread was pinned to."""


def bucket(thread_id: str, agent: str) -> float:
    """The thread's place in ``[0, 100)`` for the agent's canary (stable across processes)."""
    digest = hashlib.sha256(f"{agent}\x00{thread_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def stable_version(release: AgentRelease, declared: str, deployed: Collection[str]) -> str:
    """The promoted version when it is deployed, else the version the workflow declares."""
    return release.stable if release.stable in deployed else declared


def choose_version(*, thread_id: str, release: AgentRelease, declared: str,
                   deployed: Collection[str], pinned: str | None) -> VersionPick:
    """The version of ``release.agent`` a run of ``thread_id`` uses.

    ``deployed`` are the versions the workflow can run; ``pinned`` is the version recorded for
    the thread (None for a thread that has not run the agent yet).
    """
    if pinned is not None and pinned in deployed and pinned not in release.withdrawn:
        return VersionPick(pinned, VersionChoice.PINNED)
    canary = release.canary
    if (canary is not None and canary in deployed and canary not in release.withdrawn
            and bucket(thread_id, release.agent) < release.weight):
        pick = VersionPick(canary, VersionChoice.CANARY)
    else:
        pick = VersionPick(stable_version(release, declared, deployed), VersionChoice.STABLE)
    if pinned is not None:
        return VersionPick(pick.version, VersionChoice.REPINNED, previous=pinned)
    return pick


__all__ = ["VersionChoice", "VersionPick", "bucket", "choose_version", "stable_version"]
