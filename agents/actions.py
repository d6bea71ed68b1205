"""Declared approval policy and a tool box that runs side effects exactly once."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ValidationError

from accord.agents.handoff import ProposedAction
from accord.agents.ledger import Ledger
from accord.guardrails.permissions import check_args, check_result

IDEMPOTENCY_ARG = "idempotency_key"
READ_ONLY = "accord_read_only"
"""Tool metadata key: the tool only reads (see :func:`read_only`)."""


def read_only(tool: BaseTool) -> BaseTool:
    """Mark a tool as one that changes nothing (a lookup, a search).

    Its results are still recorded in the run's ledger, but with the run's next write rather
    than in a transaction of their own: before a tool with side effects runs, whatever the run
    read is written, so a re-run after a crash sees what the first run read before it acted;
    a re-run that missed a later read simply reads again. Use it as a decorator above
    ``@tool``.
    """
    tool.metadata = {**(tool.metadata or {}), READ_ONLY: True}
    return tool


@dataclass(frozen=True)
class ApprovalPolicy:
    """Declares that calls of one tool need a human decision (optionally only some calls)."""

    tool: str
    """Name of the tool the policy covers."""
    approval_node: str
    """The approval node that asks the human."""
    when: Callable[[Mapping[str, Any]], bool] | None = None
    """Predicate on the call's arguments; ``None`` means every call needs approval."""
    risk: Literal["low", "medium", "high"] = "high"
    """Risk shown to the approver."""
    description: str = ""
    """Human-readable rule, shown in payloads and docs (for example 'amount > 100')."""
    decisions: tuple[Literal["approve", "edit", "reject", "respond"], ...] = (
        "approve", "edit", "reject", "respond")
    """The decisions a reviewer may give (the request's ``allowed_decisions``)."""

    def applies(self, tool: str, args: Mapping[str, Any]) -> bool:
        return tool == self.tool and (self.when is None or bool(self.when(args)))


def idempotency_key(*parts: str) -> str:
    """A stable key for one side effect of one task in one thread."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def bound_tool(tool: BaseTool, key: str | None,
               on_result: Callable[[Any], None]) -> BaseTool | None:
    """``tool`` for one call of an LLM agent: its idempotency key bound (``key``; the model
    neither sees nor sets it, and a tool node strips model-supplied values of injected
    arguments) and its raw result handed to ``on_result`` (the ledger records what the tool
    returned, as a rule-based agent's call of the same action records it). ``None`` for a tool
    that takes injected arguments besides the key, or answers with an artifact."""
    schema = tool.tool_call_schema
    fields = set(getattr(schema, "model_fields", {}) or {})
    if set(tool.args) - fields - {IDEMPOTENCY_ARG} or tool.response_format != "content":
        return None

    def payload(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, IDEMPOTENCY_ARG: key} if key is not None else kwargs

    def run(**kwargs: Any) -> Any:
        result = tool.invoke(payload(kwargs))
        on_result(result)
        return result

    async def arun(**kwargs: Any) -> Any:
        result = await tool.ainvoke(payload(kwargs))
        on_result(result)
        return result

    return StructuredTool.from_function(
        func=run, coroutine=arun, name=tool.name, description=tool.description,
        args_schema=schema, metadata=tool.metadata, return_direct=tool.return_direct)


def _takes_key(tool: BaseTool) -> bool:
    func = getattr(tool, "func", None) or getattr(tool, "coroutine", None)
    return func is not None and IDEMPOTENCY_ARG in inspect.signature(func).parameters


class ToolBox:
    """The tools of a workflow by name, with the approval policies that gate them."""

    def __init__(
        self, tools: Iterable[BaseTool] = (), policies: Iterable[ApprovalPolicy] = ()
    ) -> None:
        self.tools: dict[str, BaseTool] = {t.name: t for t in tools}
        self.policies: tuple[ApprovalPolicy, ...] = tuple(policies)
        self._keyed = frozenset(name for name, t in self.tools.items() if _takes_key(t))
        self._read_only = frozenset(name for name, t in self.tools.items()
                                    if (t.metadata or {}).get(READ_ONLY))

    def subset(self, names: Iterable[str]) -> list[BaseTool]:
        missing = [n for n in names if n not in self.tools]
        if missing:
            from accord.agents.registry import RegistryError

            raise RegistryError(f"unknown tool(s): {', '.join(missing)}")
        return [self.tools[n] for n in names]

    def policy_for(self, tool: str, args: Mapping[str, Any]) -> ApprovalPolicy | None:
        return next((p for p in self.policies if p.applies(tool, args)), None)

    def gate(
        self, tool: str, args: Mapping[str, Any], *, key: str, reason: str = ""
    ) -> ProposedAction | None:
        """The action to hold for approval, or ``None`` when the call may run now."""
        policy = self.policy_for(tool, args)
        if policy is None:
            return None
        return ProposedAction(
            tool=tool,
            args=dict(args),
            reason=reason or policy.description,
            risk=policy.risk,
            approval_node=policy.approval_node,
            idempotency_key=key,
        )

    def args_schema(self, tool: str) -> dict[str, Any]:
        """The JSON schema of the arguments a reviewer may edit (the idempotency key aside)."""
        found = self.tools.get(tool)
        schema = found.tool_call_schema if found is not None else None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            shown = schema.model_json_schema()
        elif isinstance(schema, dict):
            shown = dict(schema)
        else:
            return {"type": "object"}
        shown["properties"] = {k: v for k, v in (shown.get("properties") or {}).items()
                               if k != IDEMPOTENCY_ARG}
        if "required" in shown:
            shown["required"] = [k for k in shown["required"] if k != IDEMPOTENCY_ARG]
        return shown

    def check_args(self, tool: str, args: Mapping[str, Any]) -> str | None:
        """Why ``args`` do not fit the tool (an unknown argument, a value its schema refuses),
        or ``None`` when they do (or the tool declares no pydantic schema)."""
        found = self.tools.get(tool)
        schema = found.tool_call_schema if found is not None else None
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            return None
        fields = set(schema.model_fields) - {IDEMPOTENCY_ARG}
        unknown = sorted(set(args) - fields)
        if unknown:
            return (f"{tool} takes no argument {', '.join(map(repr, unknown))} "
                    f"(it takes {', '.join(sorted(fields))})")
        try:
            schema.model_validate(dict(args))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            message = err.get("msg", str(exc)).removeprefix("Value error, ")
            return f"{where}: {message}" if where else message
        return None

    def accepts_key(self, tool: str) -> bool:
        """Whether the tool takes an ``idempotency_key`` (a side-effecting tool)."""
        return tool in self._keyed

    def repeatable(self, tool: str) -> bool:
        """Whether calling the tool again after a crash is harmless: it takes an idempotency
        key, or it is :func:`read_only`. Its ledger record may wait for the run's next write."""
        return tool in self._keyed or tool in self._read_only

    def reads_only(self, tool: str) -> bool:
        """Whether the tool is marked :func:`read_only`."""
        return tool in self._read_only

    def run(self, tool: str, args: Mapping[str, Any], *, key: str, ledger: Ledger | None = None) -> Any:
        """Run a tool; side-effecting tools receive the idempotency key so a re-run is a no-op.

        With a ledger, a call already recorded under ``key`` returns its recorded result. A
        tool that declares who may see its data (``accord.guardrails.visible_to``) is checked
        before it runs and before its result is returned (``DataNotVisible``).
        """
        check_args(self.tools[tool], args)
        if ledger is not None:
            found, result = ledger.recall(key)
            if found:
                check_result(self.tools[tool], result)
                return result
            if not self.reads_only(tool):
                ledger.settle()
        payload = dict(args)
        if self.accepts_key(tool):
            payload[IDEMPOTENCY_ARG] = key
        result = self.tools[tool].invoke(payload)
        if ledger is not None:
            result = ledger.record(key, tool, result, repeatable=self.repeatable(tool))
        check_result(self.tools[tool], result)
        return result
