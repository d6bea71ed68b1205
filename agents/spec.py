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

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


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
    reads: tuple[str, ...] = ()
    """Shared-context keys handed to the agent."""
    writes: tuple[str, ...] = ()
    """Shared-context keys the agent owns and may write."""
    fallback: str | None = None
    """Id of the agent that takes over when this one fails."""
    retry: RetrySpec = RetrySpec()
    """Retry policy for the agent's node."""
    timeout: float | None = Field(None, gt=0)
    """Seconds the agent's whole call may take, its retries included (every entry point)."""
    breaker: BreakerSpec | None = None
    """Circuit breakers for the agent and its model provider (none when unset)."""
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

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise ValueError(f"version {value!r} is not semantic (MAJOR.MINOR.PATCH)")
        return value

    @field_validator("input_schema", "output_schema", "handler", mode="before")
    @classmethod
    def _resolve_import(cls, value: Any) -> Any:
        return import_object(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_kind(self) -> AgentSpec:
        if self.kind == "rules" and not callable(self.handler):
            raise ValueError(f"rule-based agent {self.id!r} needs a callable handler")
        if self.kind == "llm" and not self.model:
            raise ValueError(f"LLM agent {self.id!r} needs a model or tier")
        return self

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
