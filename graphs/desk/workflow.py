"""The second example workflow: a content-publishing desk, written against accord's public API.

A drafter writes a story from sourced facts; a fact-checker sends it back to the drafter while a
claim is unsupported, else on to the editor; the editor passes it to the publisher; publishing to
more than 10,000 readers waits for an editor's approval. The fact-checker may never hand a story
to the publisher: the transition table declares each agent's successors, and an undeclared
choice is recorded and sent to the desk chief. ``make_graph`` is the factory ``langgraph.json``
exports.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from accord.agents import ApprovalPolicy, ModelResolver, load_specs
from accord.graphs import Router, Step, Workflow
from accord.graphs.desk.newsroom import DeskDB, desk_tools

SPECS = Path(__file__).with_name("specs") / "desk_agents.yaml"
TRANSITIONS = {
    "router": ["drafter", "END"],
    "drafter": ["fact_checker"],
    "fact_checker": ["drafter", "editor"],  # never the publisher
    "editor": ["publisher"],
    "publisher": ["publish_approval", "router"],
    "publish_approval": ["router"],
    "desk_chief": ["END"],
}


def desk_chief(state: dict[str, Any]) -> Step:
    """The error path: the story stops and waits for a person."""
    why = (state.get("errors") or [{"error": "a person asked for it"}])[-1]["error"]
    return Step("END", {"tasks": {state["active_task"]: {"status": "failed",
                                                         "result": f"Held for the desk chief: {why}"}}})


def build_desk(*, db: DeskDB | str | None = None, models: ModelResolver | None = None,
               use_llm: bool | None = None, approval_audience: int = 10_000) -> Workflow:
    """The desk workflow, ready to ``compile(checkpointer=...)`` (LLM agents when a model is
    configured, else their rule-based twins)."""
    workflow = Workflow(
        "desk", router=Router(default="drafter"), max_hops=16, error_node="desk_chief",
        tools=desk_tools(db if isinstance(db, DeskDB) else DeskDB(db)), models=models,
        use_llm=use_llm,
        approvals=[ApprovalPolicy("publish_article", approval_node="publish_approval",
                                  when=lambda args: args["audience"] > approval_audience,
                                  description=f"more than {approval_audience:,} readers")],
    )
    for spec in load_specs(SPECS):
        workflow.agent(spec)
    return workflow.approval("publish_approval").node("desk_chief", desk_chief).transitions(TRANSITIONS)


@functools.cache
def make_graph() -> Any:
    """The desk graph for ``langgraph dev`` (built on the first request, not at import)."""
    return build_desk().compile()
