"""accord.graphs: the state-machine builder, router, approval nodes and state schema."""

from accord.graphs.approval import ApprovalDecision, ApprovalRequest, parse_decision
from accord.graphs.builder import Workflow
from accord.graphs.errors import (
    AccordError,
    HopBudgetExceeded,
    InvalidResume,
    WorkflowBuildError,
)
from accord.graphs.nodes import Step
from accord.graphs.router import (
    KeywordRule,
    LLMClassifier,
    PatternRule,
    PredicateRule,
    RouteDecision,
    Router,
)
from accord.graphs.state import WorkflowState
from accord.graphs.transitions import TransitionTable

__all__ = [
    "AccordError",
    "ApprovalDecision",
    "ApprovalRequest",
    "HopBudgetExceeded",
    "InvalidResume",
    "KeywordRule",
    "LLMClassifier",
    "PatternRule",
    "PredicateRule",
    "RouteDecision",
    "Router",
    "Step",
    "TransitionTable",
    "Workflow",
    "WorkflowBuildError",
    "WorkflowState",
    "parse_decision",
]
