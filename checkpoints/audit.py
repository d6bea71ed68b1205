"""The audit log in accord's saver (``accord_audit``): one row per event, written by the run in
the transaction of the step that produced it; read here."""

from __future__ import annotations

from typing import Any

from accord.records import AuditEvent


class AuditAccess:
    """The audit log's part of accord's saver."""

    def audit_log(self, thread_id: str) -> list[AuditEvent]:
        """A thread's audit events, oldest first."""
        return self._read(lambda cur: self.dialect.audit(cur, thread_id))

    def record_refusal(self, thread_id: str, event: dict[str, Any]) -> None:
        """Record an event for a request the engine refused (nothing else is saved)."""
        self._transaction(None, lambda cur: self.dialect.insert_events(cur, thread_id,
                                                                       [(None, event)]))


__all__ = ["AuditAccess"]
