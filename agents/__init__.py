"""accord.agents: agents as data, the registry, model tiers, LLM and rule-based agents."""

from accord.agents.actions import ApprovalPolicy, ToolBox, read_only
from accord.agents.handoff import AgentResult, Handoff, ProposedAction, ReviewedAction
from accord.agents.models import ModelResolver, llm_available
from accord.agents.registry import AgentRegistry, RegistryError
from accord.agents.runner import ActionRejected, AgentRunner, ToolCalls, ToolNotDeclared
from accord.agents.spec import AgentSpec, RetrySpec, SpecError, load_specs

__all__ = [
    "read_only",
    "ActionRejected",
    "AgentRegistry",
    "AgentResult",
    "AgentRunner",
    "AgentSpec",
    "ApprovalPolicy",
    "Handoff",
    "ModelResolver",
    "ProposedAction",
    "RegistryError",
    "RetrySpec",
    "ReviewedAction",
    "SpecError",
    "ToolBox",
    "ToolCalls",
    "ToolNotDeclared",
    "llm_available",
    "load_specs",
]
