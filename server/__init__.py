"""accord.server: accord's HTTP app (the runs API under ``/api``, ``/metrics``; see
``accord.server.app.build_app``, served by ``accord serve``) and what the LangGraph dev server
and Agent Server need from accord.

`langgraph.json` exports the graphs and names `accord.server.checkpointer.accord_saver` (by
file path) as the server's checkpointer, so threads served by `langgraph dev` live in the same
database as threads run from Python or the `accord` CLI.
"""

from accord.server.checkpointer import accord_saver

__all__ = ["accord_saver"]
