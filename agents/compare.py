"""Error rate and cost of each version of an agent, from the audit log.

Every agent call leaves an ``agent_run`` event in ``accord_audit`` (version, outcome, tokens);
this reads them back for one agent and sums them per version: the figures to decide between
``accord agents promote`` and ``accord agents rollback``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from accord.agents.versions import semver


@dataclass(frozen=True)
class VersionStats:
    """What one version of an agent did."""

    version: str
    """The version."""
    threads: int
    """Threads that ran it."""
    calls: int
    """Calls of it (disabled calls excluded)."""
    errors: int
    """Calls that failed (its fallback answered, or nothing did)."""
    tokens: int
    """Model tokens its calls used."""

    @property
    def error_rate(self) -> float:
        """Failed calls over calls (0 with no call)."""
        return self.errors / self.calls if self.calls else 0.0

    @property
    def tokens_per_call(self) -> float:
        """Mean tokens per call (0 with no call)."""
        return self.tokens / self.calls if self.calls else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "threads": self.threads, "calls": self.calls,
                "errors": self.errors, "error_rate": round(self.error_rate, 4),
                "tokens": self.tokens, "tokens_per_call": round(self.tokens_per_call, 1)}


def _events(saver: Any, agent: str) -> list[tuple[str, dict[str, Any]]]:
    """``(thread_id, event)`` of the agent's ``agent_run`` events."""
    dialect = saver.dialect
    if hasattr(dialect, "events"):  # memory:// and savers that are not accord's
        with saver._journal_lock:
            return [(thread, event) for thread, log in dialect.events.items()
                    for _, event in log.values()
                    if event.get("kind") == "agent_run" and event.get("agent") == agent]

    def body(cur: Any) -> list[tuple[str, dict[str, Any]]]:
        cur.execute(dialect.sql("SELECT thread_id, event FROM accord_audit"
                                " WHERE kind = %s AND agent = %s ORDER BY seq"),
                    ("agent_run", agent))
        rows = []
        for row in cur.fetchall():
            thread, event = (row["thread_id"], row["event"]) if isinstance(row, dict) else row
            rows.append((thread, event if isinstance(event, dict) else json.loads(event)))
        return rows

    return saver._read(body)


def compare_versions(saver: Any, agent: str) -> list[VersionStats]:
    """Per version of ``agent`` (oldest first): threads, calls, errors and tokens."""
    threads: dict[str, set[str]] = {}
    calls: dict[str, list[int]] = {}
    for thread, event in _events(saver, agent):
        version = str(event.get("version"))
        threads.setdefault(version, set()).add(thread)
        tally = calls.setdefault(version, [0, 0, 0])
        if event.get("outcome") == "disabled":
            continue
        tally[0] += 1
        tally[1] += event.get("outcome") in ("fallback", "failed")
        tally[2] += int(event.get("tokens") or 0)
    return [VersionStats(v, len(threads[v]), *calls[v])
            for v in sorted(threads, key=semver)]


__all__ = ["VersionStats", "compare_versions"]
