"""How each agent is released, in tables beside accord's checkpoints.

- ``accord_agent_releases``: one row per agent id: the promoted stable version, the canary
  version and the share of new threads it gets, the feature flag (``enabled``), retirement,
  and the versions rolled back (threads pinned to one move to the stable version);
- ``accord_agent_changes``: every change of a row, field by field: who, when, old -> new.

The rows are read at run time by the agent nodes (``accord.graphs.versioning``), so a change
takes effect on the next run of any process on the database, with no redeploy. Every change
is one transaction of accord's saver (SQLite or PostgreSQL); ``memory://`` keeps them in the
process. Values are checked before anything is written: a bad one changes nothing.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accord.errors import AccordError

_DDL = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS accord_agent_releases (agent TEXT PRIMARY KEY,"
        " stable TEXT, canary TEXT, weight DOUBLE PRECISION NOT NULL DEFAULT 0,"
        " enabled INTEGER NOT NULL DEFAULT 1, retired INTEGER NOT NULL DEFAULT 0,"
        " withdrawn TEXT NOT NULL DEFAULT '[]', updated_at TEXT, updated_by TEXT)",
        "CREATE TABLE IF NOT EXISTS accord_agent_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " agent TEXT NOT NULL, field TEXT NOT NULL, old TEXT, new TEXT, changed_by TEXT NOT NULL,"
        " at TEXT NOT NULL)",
    ),
    "postgres": (
        "CREATE TABLE IF NOT EXISTS accord_agent_releases (agent TEXT PRIMARY KEY,"
        " stable TEXT, canary TEXT, weight DOUBLE PRECISION NOT NULL DEFAULT 0,"
        " enabled INTEGER NOT NULL DEFAULT 1, retired INTEGER NOT NULL DEFAULT 0,"
        " withdrawn TEXT NOT NULL DEFAULT '[]', updated_at TEXT, updated_by TEXT)",
        "CREATE TABLE IF NOT EXISTS accord_agent_changes (seq BIGSERIAL PRIMARY KEY,"
        " agent TEXT NOT NULL, field TEXT NOT NULL, old TEXT, new TEXT, changed_by TEXT NOT NULL,"
        " at TEXT NOT NULL)",
    ),
}
_COLUMNS = ("agent", "stable", "canary", "weight", "enabled", "retired", "withdrawn",
            "updated_at", "updated_by")
_SETUP_LOCK = 0x6163636F72640001
"""The advisory lock that serialises creating the tables on PostgreSQL."""
_FIELDS = ("stable", "canary", "weight", "enabled", "retired", "withdrawn")
"""The fields whose changes are audited."""


class ReleaseError(AccordError):
    """A release setting is invalid (a weight out of range, an unknown agent or version)."""


class ReleaseTableCorrupt(AccordError):
    """A row of ``accord_agent_releases`` holds a value accord cannot read (edited by hand?)."""


class AgentRelease(BaseModel):
    """How one agent is released: versions, canary share, flag, retirement."""

    model_config = ConfigDict(frozen=True)

    agent: str
    """The agent id."""
    stable: str | None = None
    """The promoted version (None: the version the workflow declares)."""
    canary: str | None = None
    """The version new threads try, if any."""
    weight: float = Field(0.0, ge=0, le=100)
    """Percent of new threads that get the canary version."""
    enabled: bool = True
    """The feature flag: a disabled agent's tasks go to its declared fallback."""
    retired: bool = False
    """Retired agents never run again (their tasks go to the fallback, like a disabled one)."""
    withdrawn: tuple[str, ...] = ()
    """Versions rolled back: threads pinned to one move to the stable version."""
    updated_at: str | None = None
    """When the row last changed (UTC, ISO-8601)."""
    updated_by: str | None = None
    """Who changed it last."""


class ReleaseChange(BaseModel):
    """One audited change of one field of an agent's release."""

    model_config = ConfigDict(frozen=True)

    seq: int
    """Order of the change."""
    agent: str
    """The agent id."""
    field: str
    """``stable``, ``canary``, ``weight``, ``enabled``, ``retired`` or ``withdrawn``."""
    old: Any
    """The value before."""
    new: Any
    """The value after."""
    by: str
    """Who made the change."""
    at: str
    """When (UTC, ISO-8601)."""


def check_weight(weight: float, agent: str = "") -> float:
    """A canary share in percent; :class:`ReleaseError` outside 0..100."""
    of = f" of agent {agent}" if agent else ""
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise ReleaseError(f"canary weight{of} {weight!r} is not a number of percent") from None
    if not 0 <= value <= 100:
        raise ReleaseError(f"canary weight{of} {value:g}% is out of range: give 0 to 100 percent")
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _diff(before: AgentRelease, after: AgentRelease) -> list[tuple[str, Any, Any]]:
    old, new = before.model_dump(), after.model_dump()
    return [(f, old[f], new[f]) for f in _FIELDS if old[f] != new[f]]


class ReleaseStore:
    """The release rows and their change log; subclasses keep them somewhere."""

    def get(self, agent: str) -> AgentRelease:
        """The agent's release (defaults when it has no row)."""
        return self.all().get(agent) or AgentRelease(agent=agent)

    def all(self) -> dict[str, AgentRelease]:
        """Every agent that has a row."""
        raise NotImplementedError

    def change(self, agent: str, by: str,
               edit: Callable[[AgentRelease], AgentRelease]) -> AgentRelease:
        """Apply ``edit`` to the agent's release and record each changed field, atomically."""
        raise NotImplementedError

    def changes(self, agent: str | None = None) -> list[ReleaseChange]:
        """The change log, oldest first (of one agent, or all)."""
        raise NotImplementedError


class MemoryReleases(ReleaseStore):
    """Release rows in this process (``memory://`` and savers that are not accord's)."""

    def __init__(self) -> None:
        self._rows: dict[str, AgentRelease] = {}
        self._log: list[ReleaseChange] = []
        self._lock = threading.Lock()

    def all(self) -> dict[str, AgentRelease]:
        with self._lock:
            return dict(self._rows)

    def change(self, agent: str, by: str,
               edit: Callable[[AgentRelease], AgentRelease]) -> AgentRelease:
        with self._lock:
            before = self._rows.get(agent) or AgentRelease(agent=agent)
            after = edit(before)
            changed = _diff(before, after)
            if not changed:
                return before
            at = _now()
            after = after.model_copy(update={"updated_at": at, "updated_by": by})
            self._rows[agent] = after
            for field, old, new in changed:
                self._log.append(ReleaseChange(seq=len(self._log) + 1, agent=agent, field=field,
                                               old=old, new=new, by=by, at=at))
            return after

    def changes(self, agent: str | None = None) -> list[ReleaseChange]:
        with self._lock:
            return [c for c in self._log if agent is None or c.agent == agent]


def _row(row: Any) -> AgentRelease:
    values = dict(row) if isinstance(row, dict) else dict(zip(_COLUMNS, row, strict=True))
    try:
        return AgentRelease(
            agent=values["agent"], stable=values["stable"], canary=values["canary"],
            weight=float(values["weight"]), enabled=bool(values["enabled"]),
            retired=bool(values["retired"]), withdrawn=tuple(json.loads(values["withdrawn"])),
            updated_at=values["updated_at"], updated_by=values["updated_by"])
    except (ValueError, TypeError) as exc:
        raise ReleaseTableCorrupt(
            f"accord_agent_releases row {values.get('agent')!r}: {str(exc).splitlines()[0]}"
        ) from None


class SqlReleases(ReleaseStore):
    """Release rows in accord's database, through its saver's transactions."""

    def __init__(self, saver: Any) -> None:
        self.saver = saver
        self.dialect = saver.dialect.name
        self._p = "%s" if self.dialect == "postgres" else "?"
        self._ready = False

    def _setup(self, cur: Any) -> None:
        if not self._ready:
            if self.dialect == "postgres":  # concurrent CREATE TABLE IF NOT EXISTS can collide
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
            for ddl in _DDL[self.dialect]:
                cur.execute(ddl)

    def _in_transaction(self, body: Callable[[Any], Any]) -> Any:
        """``body`` in a transaction that creates the tables first if need be; the tables are
        known to exist only once it committed (a transaction cut short rolls them back)."""
        result = self.saver._transaction(None, lambda cur: (self._setup(cur), body(cur))[1])
        self._ready = True
        return result

    def _select(self, cur: Any, where: str = "", params: tuple[Any, ...] = (),
                lock: bool = False) -> list[AgentRelease]:
        tail = " FOR UPDATE" if lock and self.dialect == "postgres" else ""
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM accord_agent_releases{where}"
                    f" ORDER BY agent{tail}", params)
        return [_row(r) for r in cur.fetchall()]

    def _readable(self, body: Callable[[Any], Any]) -> Any:
        if self._ready:
            return self.saver._read(body)
        return self._in_transaction(body)

    def all(self) -> dict[str, AgentRelease]:
        return {r.agent: r for r in self._readable(self._select)}

    def change(self, agent: str, by: str,
               edit: Callable[[AgentRelease], AgentRelease]) -> AgentRelease:
        p = self._p

        def body(cur: Any) -> AgentRelease:
            cur.execute(f"INSERT INTO accord_agent_releases (agent) VALUES ({p})"
                        " ON CONFLICT (agent) DO NOTHING", (agent,))
            before = self._select(cur, f" WHERE agent = {p}", (agent,), lock=True)[0]
            after = edit(before)
            changed = _diff(before, after)
            if not changed:
                return before
            at = _now()
            after = after.model_copy(update={"updated_at": at, "updated_by": by})
            cur.execute(
                f"UPDATE accord_agent_releases SET stable = {p}, canary = {p}, weight = {p},"
                f" enabled = {p}, retired = {p}, withdrawn = {p}, updated_at = {p},"
                f" updated_by = {p} WHERE agent = {p}",
                (after.stable, after.canary, after.weight, int(after.enabled),
                 int(after.retired), json.dumps(list(after.withdrawn)), at, by, agent))
            for field, old, new in changed:
                cur.execute(f"INSERT INTO accord_agent_changes (agent, field, old, new,"
                            f" changed_by, at) VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                            (agent, field, json.dumps(old), json.dumps(new), by, at))
            return after

        return self._in_transaction(body)

    def changes(self, agent: str | None = None) -> list[ReleaseChange]:
        where, params = (f" WHERE agent = {self._p}", (agent,)) if agent else ("", ())

        def body(cur: Any) -> list[ReleaseChange]:
            cur.execute("SELECT seq, agent, field, old, new, changed_by, at"
                        f" FROM accord_agent_changes{where} ORDER BY seq", params)
            out = []
            for row in cur.fetchall():
                seq, name, field, old, new, by, at = (
                    row.values() if isinstance(row, dict) else row)
                out.append(ReleaseChange(seq=seq, agent=name, field=field, old=json.loads(old),
                                         new=json.loads(new), by=by, at=at))
            return out

        return self._readable(body)


_STORES: weakref.WeakKeyDictionary[Any, ReleaseStore] = weakref.WeakKeyDictionary()
"""The release store of each open saver."""


def releases_for(saver: Any) -> ReleaseStore:
    """The release rows of ``saver``'s database (in this process for ``memory://``)."""
    store = _STORES.get(saver)
    if store is None:
        dialect = getattr(getattr(saver, "dialect", None), "name", None)
        store = SqlReleases(saver) if dialect in _DDL else MemoryReleases()
        _STORES[saver] = store
    return store


__all__ = ["AgentRelease", "MemoryReleases", "ReleaseChange", "ReleaseError", "ReleaseStore",
           "ReleaseTableCorrupt", "SqlReleases", "check_weight", "releases_for"]
