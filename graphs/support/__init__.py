"""The example workflow: customer support for a small software company (see ``workflow.py``).

Nothing is built at import: ``build_support()`` returns the workflow, ``make_graph()`` the
compiled graph ``langgraph.json`` exports.
"""

from accord.graphs.support.db import SupportDB, support_tools
from accord.graphs.support.workflow import (
    ACCOUNT,
    BILLING,
    DESCRIPTIONS,
    HUMAN_TRIAGE,
    REFUND_APPROVAL,
    ROUTER,
    RULES,
    TECH,
    TRANSITIONS,
    build_support,
    make_graph,
    mode_line,
    spec_file,
)

__all__ = [
    "ACCOUNT",
    "BILLING",
    "DESCRIPTIONS",
    "HUMAN_TRIAGE",
    "REFUND_APPROVAL",
    "ROUTER",
    "RULES",
    "TECH",
    "TRANSITIONS",
    "SupportDB",
    "build_support",
    "make_graph",
    "mode_line",
    "spec_file",
    "support_tools",
]
