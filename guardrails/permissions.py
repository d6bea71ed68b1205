"""Permissions: which tools an agent may call, whose data a tool may show.

An agent calls only the tools its spec declares (``ToolNotDeclared`` otherwise) and reads only
the shared-context keys it declares (the agent node hands it nothing else). A tool declares who
may see its data with :func:`visible_to`: the owner of the data a call touches (from its
arguments, checked before it runs) or returns (from its result, checked before the agent sees
it) must be the run's end user (``configurable.user_id``, or the identity the LangGraph
server's auth verified). A violation raises :class:`DataNotVisible`, is recorded in the audit
(``permission_denied``) and is not applied: the call does not run, or its result is withheld.

```python
@visible_to(result_owner=lambda invoice: invoice.get("email"))
@read_only
@tool
def get_invoice(invoice_id: str) -> dict: ...
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool

from accord.guardrails.base import GuardStop
from accord.guardrails.call import CALL, current_user
from accord.guardrails.vault import reveal
from accord.records import AuditKind

VISIBLE_TO = "accord_visible_to"
"""Tool metadata key: the tool's :class:`Visibility`."""


class PermissionDenied(GuardStop):
    """An agent did something its declarations do not allow; it was not applied."""

    audit_kind = AuditKind.PERMISSION_DENIED

    def as_dict(self) -> dict[str, Any]:
        return {"reason": str(self)}


class DataNotVisible(PermissionDenied):
    """A tool call touched data that belongs to someone other than the run's end user."""

    def __init__(self, tool: str, owner: str | None, user: str | None) -> None:
        self.tool, self.owner, self.user = tool, owner, user
        who = f"user {user!r}" if user else "a run without an end user"
        super().__init__(f"{tool}: {who} may not see this data (it belongs to another customer)")

    def as_dict(self) -> dict[str, Any]:
        return {"reason": str(self), "tool": self.tool, "user": self.user}


@dataclass(frozen=True)
class Visibility:
    """Who may see a tool's data: the end user who owns it."""

    owner: Callable[[Mapping[str, Any]], Any] | None = None
    """The owner of what a call touches, from its arguments (checked before it runs)."""
    result_owner: Callable[[Any], Any] | None = None
    """The owner of what a call returned, from its result (checked before the agent sees it;
    ``None`` for a result that holds nobody's data, such as an error)."""
    anonymous: bool = True
    """Whether a run without an end user may see the data (``False``: only a known owner)."""


def visible_to(*, owner: Callable[[Mapping[str, Any]], Any] | None = None,
               result_owner: Callable[[Any], Any] | None = None,
               anonymous: bool = True) -> Callable[[BaseTool], BaseTool]:
    """Declare who may see a tool's data (a decorator above ``@tool``); see the module."""
    rule = Visibility(owner, result_owner, anonymous)

    def mark(tool: BaseTool) -> BaseTool:
        tool.metadata = {**(tool.metadata or {}), VISIBLE_TO: rule}
        return tool

    return mark


def _same(owner: Any, user: str) -> bool:
    return str(reveal(owner)).strip().casefold() == user.strip().casefold()


def _check(tool: BaseTool, owner: Any, rule: Visibility) -> None:
    user = current_user()
    if owner is None:
        return
    if user is None:
        if rule.anonymous:
            return
        raise _denied(DataNotVisible(tool.name, None, None))
    owners = owner if isinstance(owner, list | tuple | set | frozenset) else (owner,)
    if not all(_same(o, user) for o in owners if o is not None):
        raise _denied(DataNotVisible(tool.name, None, user))


def _denied(error: DataNotVisible) -> DataNotVisible:
    call = CALL.get()
    if call is not None:
        call.note(AuditKind.PERMISSION_DENIED, **error.as_dict())
    return error


def _rule(tool: BaseTool | None) -> Visibility | None:
    rule = (getattr(tool, "metadata", None) or {}).get(VISIBLE_TO)
    return rule if isinstance(rule, Visibility) else None


def check_args(tool: BaseTool | None, args: Mapping[str, Any]) -> None:
    """Refuse a call whose arguments touch another user's data (:class:`DataNotVisible`)."""
    rule = _rule(tool)
    if rule is not None and rule.owner is not None:
        _check(tool, rule.owner(args), rule)  # type: ignore[arg-type]


def check_result(tool: BaseTool | None, result: Any) -> None:
    """Refuse a result that holds another user's data (:class:`DataNotVisible`)."""
    rule = _rule(tool)
    if rule is not None and rule.result_owner is not None:
        _check(tool, rule.result_owner(result), rule)  # type: ignore[arg-type]


__all__ = ["VISIBLE_TO", "DataNotVisible", "PermissionDenied", "Visibility", "check_args",
           "check_result", "visible_to"]
