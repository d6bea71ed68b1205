"""accord.agents: agents as data, the registry, model tiers, LLM and rule-based agents."""

from accord.agents.actions import ApprovalPolicy, ToolBox, read_only
from accord.agents.flags import AgentDisabled
from accord.agents.handoff import AgentResult, Handoff, ProposedAction, ReviewedAction
from accord.agents.models import ModelResolver, llm_available
from accord.agents.registry import AgentRegistry, RegistryError, VersionEntry
from accord.agents.releases import AgentRelease, ReleaseError
from accord.agents.runner import ActionRejected, AgentRunner, ToolCalls, ToolNotDeclared
from accord.agents.spec import AgentSpec, RetrySpec, SpecError, load_specs
from accord.agents.versions import BreakingChange

__all__ = [
    "read_only",
    "ActionRejected",
    "AgentDisabled",
    "AgentRegistry",
    "AgentRelease",
    "BreakingChange",
    "AgentResult",
    "AgentRunner",
    "AgentSpec",
    "ApprovalPolicy",
    "Handoff",
    "ModelResolver",
    "ProposedAction",
    "RegistryError",
    "ReleaseError",
    "RetrySpec",
    "ReviewedAction",
    "SpecError",
    "ToolBox",
    "ToolCalls",
    "ToolNotDeclared",
    "VersionEntry",
    "llm_available",
    "load_specs",
]
