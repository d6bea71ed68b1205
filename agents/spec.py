"""AgentSpec: an agent as data, loadable from YAML or built in Python."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from accord.errors import AccordError
from accord.guardrails.limits import BudgetSpec, RateLimitSpec
from accord.resilience.breaker import BreakerSpec
from accord.resilience.fallback import FallbackHop, chain_of

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")

STEP_TIMEOUT = 300.0
"""Seconds an agent's whole call may take (its retries included) when its spec says nothing."""
TOOL_TIMEOUT = 60.0
"""Seconds one tool call may take when the agent's spec says nothing."""


class SpecError(AccordError):
    """An agent spec (a YAML file or its data) is invalid; the message says where."""


def import_object(path: str) -> Any:
    """Import ``package.module:attribute``."""
    module, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"{path!r} is not of the form 'package.module:attribute'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class RetrySpec(BaseModel):
    """How often an agent's call is retried on a transient error."""

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(2, ge=1, le=10)
    """Attempts in total, the first one included."""
    initial_interval: float = Field(0.5, ge=0)
    """Seconds before the first retry."""
    backoff_factor: float = Field(2.0, ge=1)
    """Multiplier applied to the interval after each retry."""


class AgentSpec(BaseModel):
    """An agent as data: what it is for, what it may touch, how it is run."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    id: str
    """Unique identifier, lower_snake_case (also the node name when used in a workflow)."""
    version: str = "1.0.0"
    """Semantic version of this agent definition."""
    purpose: str
    """One line saying what the agent is for."""
    kind: Literal["llm", "rules"] = "llm"
    """``llm`` runs langchain ``create_agent``; ``rules`` runs a deterministic handler."""
    responsibilities: tuple[str, ...] = ()
    """The responsibilities this agent owns (used for conflict checks and routing)."""
    priority: int | None = None
    """Tie-breaker when two agents claim a responsibility: higher wins."""
    input_schema: type[BaseModel] | None = None
    """Pydantic model the handoff must satisfy, if any."""
    output_schema: type[BaseModel] | None = None
    """Pydantic model of the agent's structured output, if any."""
    tools: tuple[str, ...] = ()
    """Names of the tools the agent may call."""
    system_prompt: str = ""
    """System prompt for LLM agents."""
    model: str | None = None
    """``provider:model`` or a tier name (``small``, ``large``) resolved by configuration."""
    handler: Any = None
    """For rule-based agents: a callable ``(handoff, tools) -> AgentResult`` or its import path."""
    rules: Any = None
    """For LLM agents: the handler of a rule-based twin (a callable or its import path). The
    twin (:meth:`twin`, id ``<id>_rules``) runs in the agent's place when no model is
    configured, and is the agent's fallback (unless it names another)."""
    reads: tuple[str, ...] = ()
    """Shared-context keys handed to the agent."""
    writes: tuple[str, ...] = ()
    """Shared-context keys the agent owns and may write."""
    fallback: tuple[FallbackHop, ...] = ()
    """Who takes the task over, in order, when this agent times out, fails after its retries
    or its breaker is open: the agent on another model, another agent, a human
    (``accord.resilience.fallback``). One agent id is a chain of one."""
    retry: RetrySpec = RetrySpec()
    """Retries on transient errors: of each model call (LLM agents) or of the whole call
    (rule-based agents)."""
    timeout: float | None = Field(None, gt=0)
    """Seconds the agent's whole call may take, its retries included (``STEP_TIMEOUT`` when
    unset)."""
    model_timeout: float | None = Field(None, gt=0)
    """Seconds one model call may take, each attempt on its own (the model resolver's request
    timeout when unset)."""
    tool_timeout: float | None = Field(None, gt=0)
    """Seconds one tool call may take (``TOOL_TIMEOUT`` when unset)."""
    breaker: BreakerSpec | None = None
    """Circuit breakers for the agent and its model provider (none when unset)."""
    notes: str = ""
    """What changed in this version (shown by the registry's changelog)."""
    rate_limit: RateLimitSpec | None = None
    """The agent's own rate limit (requests/s of its calls, tokens/min of its model calls)."""
    budget: BudgetSpec | None = None
    """What the agent may spend per UTC day (USD, priced by the graph's ``Limits``)."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError(f"agent id {value!r} must be lower_snake_case")
        return value

    @field_validator("fallback", mode="before")
    @classmethod
    def _chain(cls, value: Any) -> tuple[FallbackHop, ...]:
        return chain_of(value)

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise ValueError(f"version {value!r} is not semantic (MAJOR.MINOR.PATCH)")
        return value

    @field_validator("input_schema", "output_schema", "handler", "rules", mode="before")
    @classmethod
    def _resolve_import(cls, value: Any) -> Any:
        return import_object(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_kind(self) -> AgentSpec:
        if self.kind == "rules" and not callable(self.handler):
            raise ValueError(f"rule-based agent {self.id!r} needs a callable handler")
        if self.kind == "llm" and not self.model:
            raise ValueError(f"LLM agent {self.id!r} needs a model or tier")
        if self.rules is not None and (self.kind != "llm" or not callable(self.rules)):
            raise ValueError(f"agent {self.id!r}: rules names a rule-based twin's handler, "
                             "for an LLM agent")
        return self

    def twin(self) -> AgentSpec | None:
        """The rule-based twin an LLM agent declares with ``rules``: the same tools, context
        keys, schemas and timeout, no responsibilities of its own (``None`` without one)."""
        if self.rules is None:
            return None
        return AgentSpec(id=f"{self.id}_rules", version=self.version, kind="rules",
                         purpose=f"{self.purpose} (rule-based twin)", handler=self.rules,
                         tools=self.tools, reads=self.reads, writes=self.writes,
                         input_schema=self.input_schema, output_schema=self.output_schema,
                         timeout=self.timeout)

    @property
    def step_timeout(self) -> float:
        """The bound of the agent's whole call."""
        return self.timeout if self.timeout is not None else STEP_TIMEOUT

    @property
    def tool_bound(self) -> float:
        """The bound of one of its tool calls."""
        return self.tool_timeout if self.tool_timeout is not None else TOOL_TIMEOUT

    @property
    def key(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"


def load_specs(path: str | Path) -> list[AgentSpec]:
    """Load agent specs from a YAML file (one mapping or a list) or a folder of them."""
    path = Path(path)
    files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    specs: list[AgentSpec] = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
            raise SpecError(f"{where}: malformed YAML: {exc.problem or exc.context}") from None
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"{file}: {str(exc).splitlines()[0]}") from None
        for item in data if isinstance(data, list) else [data]:
            try:
                specs.append(AgentSpec.model_validate(item))
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err.get("loc", ()))
                what = err.get("msg", "").removeprefix("Value error, ")
                name = item.get("id", "?") if isinstance(item, dict) else "?"
                raise SpecError(f"{file}: agent {name}: {where}: {what}" if where
                                else f"{file}: agent {name}: {what}") from None
    return specs
