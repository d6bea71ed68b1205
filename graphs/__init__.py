"""accord.graphs: the state-machine builder, router, approval nodes and state schema.

The example workflow lives in ``accord.graphs.support`` (imported on demand).
"""

from accord.errors import AccordError
from accord.graphs.builder import Workflow
from accord.graphs.errors import (
    HopBudgetExceeded,
    IllegalTransition,
    InvalidResume,
    NodeContractError,
    UnknownGraph,
    WorkflowBuildError,
)
from accord.graphs.hitl import (
    ActionDecision,
    ApprovalDecision,
    ApprovalRequest,
    parse_decision,
    parse_resume,
)
from accord.graphs.router import (
    KeywordRule,
    LLMClassifier,
    PatternRule,
    PredicateRule,
    RouteDecision,
    Router,
)
from accord.graphs.state import WorkflowState
from accord.graphs.transitions import Step, TransitionTable

__all__ = [
    "AccordError",
    "ActionDecision",
    "ApprovalDecision",
    "ApprovalRequest",
    "HopBudgetExceeded",
    "IllegalTransition",
    "NodeContractError",
    "InvalidResume",
    "KeywordRule",
    "LLMClassifier",
    "PatternRule",
    "PredicateRule",
    "RouteDecision",
    "Router",
    "Step",
    "TransitionTable",
    "UnknownGraph",
    "Workflow",
    "WorkflowBuildError",
    "WorkflowState",
    "parse_decision",
    "parse_resume",
]
