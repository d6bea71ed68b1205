"""Errors of accord's workers that a user can cause: a database without the workers' schema,
a second job for a thread that already has one queued."""

from __future__ import annotations

from accord.errors import AccordError


class WorkersError(AccordError):
    """Something about accord's workers' queue."""


class SchemaMissing(WorkersError):
    """The database holds no procrastinate schema: nothing can be queued or run yet."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"the workers' queue is not set up in {where}; run "
                         "`accord worker --init` once (it creates the procrastinate schema)")


class AlreadyQueued(WorkersError):
    """The thread already has a job waiting in the queue (one queued job per thread)."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(f"thread {thread_id!r} already has a job waiting in the queue; "
                         "submit again once it has started")


class BadSubmission(WorkersError, ValueError):
    """A submission that names neither or both of a new request and a decision."""


__all__ = ["AlreadyQueued", "BadSubmission", "SchemaMissing", "WorkersError"]
