"""The support flow written by hand in plain LangGraph: the baseline of section 1.

Same nodes as ``accord.graphs.support`` (keyword router with an LLM tier, three
``create_agent`` specialists with the same tools and prompts, a human-triage node that opens a
ticket), the same query-only prompt for an agent, and nothing else: no input guardrails, no
task records, no audit trail, no transition checks, no hop budget, no fallbacks. The agents are
built once, as a careful hand-writer would.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypedDict

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from pydantic import BaseModel, Field

from accord.agents.spec import load_specs
from accord.graphs.support import DESCRIPTIONS, RULES, SupportDB, spec_file, support_tools

AGENT_NODES = ("billing", "tech", "account")


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class RouteChoice(BaseModel):
    target: Literal["billing", "tech", "account", "human_triage"] = Field(description="who handles it")
    confidence: float = Field(ge=0, le=1)
    reason: str


def _last_human(state: State) -> str:
    return next((m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")


def build_handwritten(model: BaseChatModel, db: SupportDB) -> StateGraph:
    tools = {t.name: t for t in support_tools(db)}
    specs = {s.id: s for s in load_specs(spec_file())}
    classifier = model.with_structured_output(RouteChoice)
    prompt = "Route the customer request to one specialist.\n" + "\n".join(
        f"- {k}: {v}" for k, v in DESCRIPTIONS.items()
    )

    def router(state: State) -> Command:
        text = _last_human(state)
        for rule in RULES:
            if rule.match(text, state):
                return Command(goto=rule.target)
        choice = classifier.invoke([SystemMessage(prompt), HumanMessage(text)])
        return Command(goto=choice.target if choice.confidence >= 0.6 else "human_triage")

    def agent_node(name: str) -> Any:
        spec = specs[name]
        agent = create_agent(
            model=model, tools=[tools[t] for t in spec.tools], system_prompt=spec.system_prompt,
            name=name, checkpointer=False,
        )

        def run(state: State) -> dict[str, Any]:
            result = agent.invoke({"messages": [HumanMessage(_last_human(state))]})
            return {"messages": [AIMessage(result["messages"][-1].text, name=name)]}

        return run

    def human_triage(state: State) -> dict[str, Any]:
        ticket = db.ticket(None, "Escalated request", _last_human(state), "escalations",
                           f"hand:{uuid.uuid4().hex}")
        return {"messages": [AIMessage(f"Passed to a person (ticket #{ticket['id']}).")]}

    graph = StateGraph(State)
    graph.add_node("router", router, destinations=(*AGENT_NODES, "human_triage"))
    for name in AGENT_NODES:
        graph.add_node(name, agent_node(name))
        graph.add_edge(name, END)
    graph.add_node("human_triage", human_triage)
    graph.add_edge("human_triage", END)
    graph.add_edge(START, "router")
    return graph
