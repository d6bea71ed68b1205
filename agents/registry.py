"""AgentRegistry: agents by id and version, and who owns which responsibility."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rich.table import Table

from accord.agents.spec import AgentSpec
from accord.agents.versions import SchemaChange, check_bump, semver
from accord.errors import AccordError


class RegistryError(AccordError):
    """The set of agents is inconsistent (duplicate version, conflicting responsibility)."""


def _version_key(version: str) -> object:
    return semver(version)


@dataclass(frozen=True)
class VersionEntry:
    """One version of an agent in the registry's changelog."""

    agent: str
    """The agent id."""
    version: str
    """This version."""
    previous: str | None
    """The version before it (None for the first)."""
    changes: tuple[SchemaChange, ...]
    """How its contract changed from the previous version."""
    notes: str
    """What the spec says changed (``AgentSpec.notes``)."""


class AgentRegistry:
    """Agents by id and version, checked for conflicting responsibilities."""

    def __init__(self, specs: Iterable[AgentSpec] = ()) -> None:
        self._specs: dict[str, dict[str, AgentSpec]] = defaultdict(dict)
        for spec in specs:
            self.register(spec)

    def register(self, spec: AgentSpec) -> AgentSpec:
        versions = self._specs[spec.id]
        if spec.version in versions:
            raise RegistryError(f"agent {spec.key} is already registered")
        order = sorted(versions.values(), key=lambda s: semver(s.version))
        before = [s for s in order if semver(s.version) < semver(spec.version)]
        after = [s for s in order if semver(s.version) > semver(spec.version)]
        try:  # a breaking change needs a major bump, on either side of the new version
            if before:
                check_bump(before[-1], spec)
            if after:
                check_bump(spec, after[0])
        except AccordError:
            if not versions:
                del self._specs[spec.id]
            raise
        versions[spec.version] = spec
        try:
            self.owners()
        except RegistryError:
            del versions[spec.version]
            if not versions:
                del self._specs[spec.id]
            raise
        return spec

    def get(self, agent_id: str, version: str | None = None) -> AgentSpec:
        versions = self._specs.get(agent_id)
        if not versions:
            raise RegistryError(f"unknown agent {agent_id!r}; known: {', '.join(sorted(self._specs))}")
        if version is None:
            return versions[max(versions, key=_version_key)]
        if version not in versions:
            raise RegistryError(f"agent {agent_id!r} has no version {version}")
        return versions[version]

    def versions(self, agent_id: str) -> list[AgentSpec]:
        """Every registered version of an agent, oldest first (empty for an unknown agent)."""
        return sorted(self._specs.get(agent_id, {}).values(), key=lambda s: semver(s.version))

    def changelog(self, agent_id: str | None = None) -> list[VersionEntry]:
        """The versions of one agent (or of all), oldest first, with their contract changes."""
        if agent_id is not None:
            self.get(agent_id)  # an unknown agent is an error, not an empty changelog
        entries: list[VersionEntry] = []
        for name in [agent_id] if agent_id else sorted(self._specs):
            previous: AgentSpec | None = None
            for spec in self.versions(name):
                changes = tuple(check_bump(previous, spec)) if previous is not None else ()
                entries.append(VersionEntry(name, spec.version,
                                            previous.version if previous else None, changes,
                                            spec.notes))
                previous = spec
        return entries

    def __contains__(self, agent_id: str) -> bool:
        return agent_id in self._specs

    def latest(self) -> list[AgentSpec]:
        return [self.get(agent_id) for agent_id in sorted(self._specs)]

    def owners(self) -> dict[str, AgentSpec]:
        """The agent that owns each responsibility (latest versions only).

        Two agents claiming one responsibility need distinct priorities; otherwise
        :class:`RegistryError` names both.
        """
        claims: dict[str, list[AgentSpec]] = defaultdict(list)
        for spec in self.latest():
            for responsibility in spec.responsibilities:
                claims[responsibility].append(spec)
        owners: dict[str, AgentSpec] = {}
        for responsibility, specs in claims.items():
            if len(specs) > 1:
                priorities = [s.priority for s in specs]
                if None in priorities or len(set(priorities)) != len(priorities):
                    names = " and ".join(s.id for s in specs)
                    raise RegistryError(
                        f"responsibility {responsibility!r} is claimed by {names} "
                        "without distinct priorities"
                    )
            owners[responsibility] = max(specs, key=lambda s: s.priority or 0)
        return owners

    def matrix(self) -> Table:
        """The responsibility matrix as a rich table (owner marked ●, backups ○)."""
        specs = self.latest()
        owners = self.owners()
        table = Table(title="Responsibility matrix")
        table.add_column("responsibility")
        for spec in specs:
            table.add_column(f"{spec.id}\n{spec.version} ({spec.kind})", justify="center")
        for responsibility in sorted(owners):
            row = [responsibility]
            for spec in specs:
                if owners[responsibility].id == spec.id:
                    row.append("●")
                elif responsibility in spec.responsibilities:
                    row.append("○")
                else:
                    row.append("")
            table.add_row(*row)
        return table
