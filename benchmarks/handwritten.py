"""The support flow written by hand in plain LangGraph: the baseline of sections 1 and 3.

Same nodes as ``accord.graphs.support`` (keyword router with an LLM tier, three
``create_agent`` specialists with the same tools and prompts, a human-triage node that opens a
ticket), the same query-only prompt for an agent, and nothing else: no input guardrails, no
task records, no audit trail, no transition checks, no hop budget, no fallbacks, no thread
locks or fencing.

It is what a competent LangGraph engineer writes for a service:

- the agents are built once, each ``create_agent(..., checkpointer=False)``: the workflow node
  is the unit of durability, so the inner tool loop writes no checkpoints (as accord's);
- ``asynchronous=True`` builds the graph for ``ainvoke`` with ``async def`` nodes that run on
  the event loop (a sync node would be sent to a worker thread each step); the default builds
  it for ``invoke`` with plain functions;
- the caller passes ``durability="sync"`` (what accord's engine runs LangGraph with). Under a
  parent at ``durability="sync"`` a checkpointer-less subgraph that inherits that setting fails
  in LangGraph (``'SyncPregelLoop' object has no attribute '_put_checkpoint_fut'``), so the
  inner agent call sets its own durability, exactly as accord's agent runner does.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypedDict

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langgraph._internal._constants import CONFIG_KEY_DURABILITY
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command
from pydantic import BaseModel, Field

from accord.agents.spec import load_specs
from accord.graphs.support import DESCRIPTIONS, RULES, SupportDB, spec_file, support_tools

AGENT_NODES = ("billing", "tech", "account")
INNER = {"configurable": {CONFIG_KEY_DURABILITY: "exit"}}
"""Config of the inner agent call (see the module docstring)."""


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class RouteChoice(BaseModel):
    target: Literal["billing", "tech", "account", "human_triage"] = Field(description="who handles it")
    confidence: float = Field(ge=0, le=1)
    reason: str


def _last_human(state: State) -> str:
    return next((m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")


def build_handwritten(model: BaseChatModel, db: SupportDB, *,
                      asynchronous: bool = False) -> StateGraph:
    tools = {t.name: t for t in support_tools(db)}
    specs = {s.id: s for s in load_specs(spec_file())}
    classifier = model.with_structured_output(RouteChoice)
    prompt = "Route the customer request to one specialist.\n" + "\n".join(
        f"- {k}: {v}" for k, v in DESCRIPTIONS.items()
    )

    def rule_target(state: State) -> tuple[str, str | None]:
        text = _last_human(state)
        return text, next((r.target for r in RULES if r.match(text, state)), None)

    def chosen(choice: RouteChoice) -> Command:
        return Command(goto=choice.target if choice.confidence >= 0.6 else "human_triage")

    def router(state: State) -> Command:
        text, target = rule_target(state)
        if target is not None:
            return Command(goto=target)
        return chosen(classifier.invoke([SystemMessage(prompt), HumanMessage(text)]))

    async def arouter(state: State) -> Command:
        text, target = rule_target(state)
        if target is not None:
            return Command(goto=target)
        return chosen(await classifier.ainvoke([SystemMessage(prompt), HumanMessage(text)]))

    def agent_node(name: str) -> Any:
        spec = specs[name]
        agent = create_agent(
            model=model, tools=[tools[t] for t in spec.tools], system_prompt=spec.system_prompt,
            name=name, checkpointer=False,
        )

        def answer(result: dict[str, Any]) -> dict[str, Any]:
            return {"messages": [AIMessage(result["messages"][-1].text, name=name)]}

        def run(state: State) -> dict[str, Any]:
            return answer(agent.invoke({"messages": [HumanMessage(_last_human(state))]}, INNER))

        async def arun(state: State) -> dict[str, Any]:
            return answer(await agent.ainvoke({"messages": [HumanMessage(_last_human(state))]},
                                              INNER))

        return arun if asynchronous else run

    def human_triage(state: State) -> dict[str, Any]:
        ticket = db.ticket(None, "Escalated request", _last_human(state), "escalations",
                           f"hand:{uuid.uuid4().hex}")
        return {"messages": [AIMessage(f"Passed to a person (ticket #{ticket['id']}).")]}

    async def ahuman_triage(state: State) -> dict[str, Any]:
        return human_triage(state)  # one local SQLite insert: the same work either way

    graph = StateGraph(State)
    graph.add_node("router", arouter if asynchronous else router,
                   destinations=(*AGENT_NODES, "human_triage"))
    for name in AGENT_NODES:
        graph.add_node(name, agent_node(name))
        graph.add_edge(name, END)
    graph.add_node("human_triage", ahuman_triage if asynchronous else human_triage)
    graph.add_edge("human_triage", END)
    graph.add_edge(START, "router")
    return graph
