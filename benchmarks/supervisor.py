"""The ``langgraph-supervisor`` contender of section 2: ``create_supervisor`` with the same agents.

The specialists are the same ``create_agent`` agents (same tools, prompts and scripted model);
human triage is the same deterministic ticket-opening step, as a one-node graph, so it costs no
model call here either. The supervisor LLM decides every handoff and writes the final answer.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypedDict

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph_supervisor import create_supervisor

from accord.agents.spec import load_specs
from accord.graphs.support import DESCRIPTIONS, SupportDB, spec_file, support_tools

AGENT_NODES = ("billing", "tech", "account")


class _State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _triage(db: SupportDB) -> Any:
    def triage(state: _State) -> dict[str, Any]:
        text = next((m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")
        ticket = db.ticket(None, "Escalated request", text, "escalations", f"sup:{uuid.uuid4().hex}")
        return {"messages": [AIMessage(f"Passed to a person (ticket #{ticket['id']}).",
                                       name="human_triage")]}

    graph = StateGraph(_State)
    graph.add_node("triage", triage)
    graph.add_edge(START, "triage")
    graph.add_edge("triage", END)
    return graph.compile(name="human_triage")


def build_supervisor(model: BaseChatModel, db: SupportDB) -> StateGraph:
    tools = {t.name: t for t in support_tools(db)}
    specs = {s.id: s for s in load_specs(spec_file())}
    agents = [
        create_agent(model=model, tools=[tools[t] for t in specs[name].tools],
                     system_prompt=specs[name].system_prompt, name=name)
        for name in AGENT_NODES
    ]
    prompt = "You are a support supervisor. Hand each request to one specialist:\n" + "\n".join(
        f"- {k}: {v}" for k, v in DESCRIPTIONS.items()
    )
    return create_supervisor([*agents, _triage(db)], model=model, prompt=prompt)


def chosen_agent(messages: list[AnyMessage]) -> str | None:
    """The agent the supervisor handed the latest request to."""
    start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    for message in messages[start + 1 :]:
        for call in getattr(message, "tool_calls", None) or []:
            if call["name"].startswith("transfer_to_"):
                return call["name"].removeprefix("transfer_to_")
    return None
