"""Typed errors raised while building or running a workflow."""

from __future__ import annotations

from accord.errors import AccordError


class WorkflowBuildError(AccordError):
    """The workflow definition is invalid; the message names the offending node."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        """The node the problem is about, when there is one."""


class HopBudgetExceeded(AccordError):
    """A run made more transitions than its hop budget allows (a runaway loop)."""

    def __init__(self, *, budget: int, node: str, target: str) -> None:
        super().__init__(
            f"hop budget of {budget} exhausted at {node} -> {target}; "
            "the run was stopped to end a loop (raise max_hops if this flow is legitimate)"
        )
        self.budget = budget
        self.node = node
        self.target = target


class IllegalTransition(AccordError):
    """A node proposed an undeclared transition and the graph declares no error path."""


class NodeContractError(AccordError):
    """A node returned something other than what its kind of node returns."""


class InvalidResume(AccordError):
    """A resume value for an approval does not match the expected shape."""


class UnknownGraph(AccordError):
    """No graph of that name in the catalog, and not an importable factory."""


__all__ = [
    "AccordError",
    "HopBudgetExceeded",
    "IllegalTransition",
    "NodeContractError",
    "InvalidResume",
    "UnknownGraph",
    "WorkflowBuildError",
]
