"""Agent versions: semantic version order and the schema diff between two versions.

What another part of a workflow relies on is an agent's contract: the input it accepts, the
output it returns, the tools it may call, the shared-context keys it owns and the
responsibilities it covers. :func:`spec_changes` lists how that contract moved from one
version to the next; :func:`check_bump` refuses a breaking change released without a major
bump (:class:`BreakingChange` names the change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from accord.agents.spec import AgentSpec
from accord.errors import AccordError


class BreakingChange(AccordError):
    """A new version of an agent breaks its contract without a major version bump."""

    def __init__(self, agent: str, old: str, new: str, change: SchemaChange) -> None:
        self.agent, self.old, self.new, self.change = agent, old, new, change
        major = semver(old).major + 1
        super().__init__(
            f"agent {agent} {new}: {change.describe()} is a breaking change from {old}; "
            f"release it as {major}.0.0 or keep the contract")


@dataclass(frozen=True, order=True)
class SemVer:
    """A parsed semantic version, ordered as semver orders them (pre-releases first)."""

    major: int
    """Incompatible contract changes."""
    minor: int
    """Compatible additions."""
    patch: int
    """Compatible fixes."""
    release: int
    """1 for a release, 0 for a pre-release (sorts before its release)."""
    pre: str
    """The pre-release label (``rc.1``), empty for a release."""


def semver(version: str) -> SemVer:
    """Parse ``MAJOR.MINOR.PATCH[-pre][+build]`` (the build is ignored)."""
    core, _, pre = version.split("+")[0].partition("-")
    major, minor, patch = (int(p) for p in core.split("."))
    return SemVer(major, minor, patch, 0 if pre else 1, pre)


@dataclass(frozen=True)
class SchemaChange:
    """One change of an agent's contract between two versions."""

    part: str
    """What changed: ``input_schema``, ``output_schema``, ``tools``, ``writes`` or
    ``responsibilities``."""
    name: str
    """The field, tool, key or responsibility that changed (empty for a whole schema)."""
    what: str
    """``added``, ``removed``, ``type changed``, ``now required``, ``now optional``."""
    breaking: bool
    """Whether a caller of the old version may break on the new one."""

    def describe(self) -> str:
        noun = {"input_schema": "input field", "output_schema": "output field", "tools": "tool",
                "writes": "owned context key", "responsibilities": "responsibility"}[self.part]
        if not self.name:
            return f"{self.part.replace('_', ' ')} {self.what}"
        return f"{noun} {self.name!r} {self.what}"


def _fields(model: type[BaseModel] | None) -> dict[str, tuple[str, bool]]:
    if model is None:
        return {}
    return {name: (repr(info.annotation), info.is_required())
            for name, info in model.model_fields.items()}


def _schema_changes(part: str, old: type[BaseModel] | None,
                    new: type[BaseModel] | None) -> list[SchemaChange]:
    """Input: a field the caller must now send, or one it can no longer send, breaks it.
    Output: a field the caller read that may now be missing breaks it."""
    inbound = part == "input_schema"
    if old is not None and new is None:
        return [SchemaChange(part, "", "removed", breaking=not inbound)]
    before, after = _fields(old), _fields(new)
    changes: list[SchemaChange] = []
    for name, (kind, required) in after.items():
        if name not in before:
            changes.append(SchemaChange(part, name, "added", breaking=inbound and required))
            continue
        old_kind, was_required = before[name]
        if kind != old_kind:
            changes.append(SchemaChange(part, name, f"type changed ({old_kind} -> {kind})", True))
        elif required and not was_required:
            changes.append(SchemaChange(part, name, "now required", breaking=inbound))
        elif was_required and not required:
            changes.append(SchemaChange(part, name, "now optional", breaking=not inbound))
    for name in before.keys() - after.keys():
        changes.append(SchemaChange(part, name, "removed", breaking=True))
    return changes


def _set_changes(part: str, old: tuple[str, ...], new: tuple[str, ...]) -> list[SchemaChange]:
    """Tools, owned keys, responsibilities: taking one away breaks who relied on it."""
    return ([SchemaChange(part, n, "removed", True) for n in old if n not in new]
            + [SchemaChange(part, n, "added", False) for n in new if n not in old])


def spec_changes(old: AgentSpec, new: AgentSpec) -> list[SchemaChange]:
    """How the contract changed from ``old`` to ``new`` (breaking changes first)."""
    changes = [
        *_schema_changes("input_schema", old.input_schema, new.input_schema),
        *_schema_changes("output_schema", old.output_schema, new.output_schema),
        *_set_changes("tools", old.tools, new.tools),
        *_set_changes("writes", old.writes, new.writes),
        *_set_changes("responsibilities", old.responsibilities, new.responsibilities),
    ]
    return sorted(changes, key=lambda c: not c.breaking)


def major_bump(old: str, new: str) -> bool:
    """Whether ``new`` may break ``old``'s contract (a major bump; a minor one below 1.0.0)."""
    a, b = semver(old), semver(new)
    return b.major > a.major or (a.major == 0 and b.major == 0 and b.minor > a.minor)


def check_bump(old: AgentSpec, new: AgentSpec) -> list[SchemaChange]:
    """The changes from ``old`` to the later ``new``; :class:`BreakingChange` for the first
    breaking one when ``new`` is not a major bump."""
    changes = spec_changes(old, new)
    breaking = [c for c in changes if c.breaking]
    if breaking and not major_bump(old.version, new.version):
        raise BreakingChange(new.id, old.version, new.version, breaking[0])
    return changes


def as_dict(change: SchemaChange) -> dict[str, Any]:
    return {"part": change.part, "name": change.name, "what": change.what,
            "breaking": change.breaking}


__all__ = ["BreakingChange", "SchemaChange", "SemVer", "as_dict", "check_bump", "major_bump",
           "semver", "spec_changes"]
