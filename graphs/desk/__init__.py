"""The second example workflow: a content-publishing desk (see ``workflow.py``).

Nothing is built at import: ``build_desk()`` returns the workflow, ``make_graph()`` the compiled
graph ``langgraph.json`` exports.
"""

from accord.graphs.desk.newsroom import DeskDB, desk_tools
from accord.graphs.desk.workflow import SPECS, TRANSITIONS, build_desk, make_graph

__all__ = ["SPECS", "TRANSITIONS", "DeskDB", "build_desk", "desk_tools", "make_graph"]
