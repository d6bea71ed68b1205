"""The publishing desk written by hand in plain LangGraph: the other side of section 7.

The same workflow as ``accord.graphs.desk`` on the same newsroom (its database, tools and
drafting rules are shared, so only the orchestration differs), with the guarantees LangGraph
can give when an engineer writes them:

- a checkpointer (the caller's, e.g. ``SqliteSaver``), so a thread survives the process;
- an approval node that ``interrupt()``s when the audience is above 10,000, and a resume value
  that is checked (approve, or reject with a reason);
- exactly-once side effects: every side-effecting tool call gets an idempotency key derived
  from the thread and the call, so LangGraph's re-run of a node on resume does not act twice;
- a transition check: each agent's handoff is checked against its declared successors; an
  undeclared one is recorded and sent to the desk chief;
- LLM agents (``create_agent`` with one handoff tool per declared successor) that fall back to
  their rule-based twins, the fallback recorded with its cause.

What it does not have (accord's engine adds them): one writer per thread, the thread index,
the audit log, the tool ledger, input guardrails, a hop budget with a recorded cause.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

from accord.graphs.desk.newsroom import DeskDB, compose, desk_tools

APPROVAL_AUDIENCE = 10_000
SIDE_EFFECTS = {"save_draft", "check_facts", "publish_article"}
SUCCESSORS = {
    "drafter": ["fact_checker"],
    "fact_checker": ["drafter", "editor"],  # never the publisher
    "editor": ["publisher"],
    "publisher": ["publish_approval", END],
}
TOOLS = {
    "drafter": ["read_draft", "find_sources", "save_draft"],
    "fact_checker": ["read_draft", "check_facts"],
    "editor": ["read_draft"],
    "publisher": ["read_draft", "publish_article"],
}
PROMPTS = {
    "drafter": "You draft news stories. The story id is the task id (the first line reads "
               "\"Task <id>: …\"). Read the story's draft first: leave out every sentence its fact "
               "check found unsupported. Find the sources on the topic and save a draft made of "
               "sourced sentences, for the audience the request names (1000 readers if it names "
               "none). Then hand it to the fact-checker.",
    "fact_checker": "You fact-check drafts. The story id is the task id. Read the story's draft "
                    "and check its facts by the draft's id. If a claim is unsupported, send the "
                    "draft back to the drafter; otherwise hand it to the editor.",
    "editor": "You are the desk's editor. The story id is the task id. Read the story's draft; "
              "if it reads as a complete short story, hand it to the publisher, else say why not.",
    "publisher": "You publish stories. The story id is the task id. Read the story's draft and "
                 "publish it to the draft's audience. Publishing to a large audience waits for "
                 "an editor's approval: when the tool says so, say that the story awaits approval.",
}


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    pending: dict[str, Any] | None
    errors: Annotated[list[str], operator.add]
    fallbacks: Annotated[list[str], operator.add]


class Failed(Exception):
    """A rule-based agent gives the story up."""


def idempotency_key(tool: str, args: dict[str, Any]) -> str:
    thread = get_config()["configurable"]["thread_id"]
    canonical = json.dumps({k: v for k, v in args.items() if k != "idempotency_key"}, sort_keys=True)
    return hashlib.sha256(f"{thread}\x1f{tool}\x1f{canonical}".encode()).hexdigest()[:32]


def caller(tools: dict[str, BaseTool]) -> Callable[..., Any]:
    def call(name: str, **args: Any) -> Any:
        if name in SIDE_EFFECTS:
            args["idempotency_key"] = idempotency_key(name, args)
        return tools[name].invoke(args)

    return call


def drafter_rules(query: str, story: str, call: Callable[..., Any]) -> tuple[str, str, Any]:
    last = call("read_draft", story=story)
    draft = compose(query, call("find_sources", topic=query), last.get("unsupported", []))
    if not draft["body"]:
        raise Failed("There are no sourced facts on this topic to draft from.")
    saved = call("save_draft", story=story, **draft)
    return f"Draft {saved['revision']}: {draft['title']}.", "fact_checker", None


def fact_checker_rules(query: str, story: str, call: Callable[..., Any]) -> tuple[str, str, Any]:
    check = call("check_facts", draft_id=call("read_draft", story=story)["id"])
    if check["unsupported"]:
        return "Unsupported: " + " ".join(check["unsupported"]), "drafter", None
    return "Every claim is sourced.", "editor", None


def editor_rules(query: str, story: str, call: Callable[..., Any]) -> tuple[str, str, Any]:
    draft = call("read_draft", story=story)
    if draft["body"].count(".") < 2:
        raise Failed(f"{draft['title']!r} is too thin to publish.")
    return f"{draft['title']!r} is ready for {draft['audience']:,} readers.", "publisher", None


def publisher_rules(query: str, story: str, call: Callable[..., Any]) -> tuple[str, str, Any]:
    args = {"story": story, "audience": call("read_draft", story=story)["audience"]}
    if args["audience"] > APPROVAL_AUDIENCE:
        return "Publishing waits for an editor's approval.", "publish_approval", args
    article = call("publish_article", **args)
    return f"Published article #{article['article_id']}: {article['title']}.", END, None


RULES = {"drafter": drafter_rules, "fact_checker": fact_checker_rules, "editor": editor_rules,
         "publisher": publisher_rules}


class Gate(AgentMiddleware):
    """Holds a large publish for approval; gives side-effecting calls their idempotency key."""

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        call = request.tool_call
        if call["name"] == "publish_article" and call["args"].get("audience", 0) > APPROVAL_AUDIENCE:
            return ToolMessage("publish_article is held for an editor's approval.",
                               tool_call_id=call["id"], name=call["name"],
                               artifact={"pending": call["args"]})
        if call["name"] in SIDE_EFFECTS:
            args = {**call["args"], "idempotency_key": idempotency_key(call["name"], call["args"])}
            request = request.override(tool_call={**call, "args": args})
        return handler(request)


def handoff_tool(node: str) -> BaseTool:
    def transfer(reason: str = "") -> tuple[str, dict[str, str]]:
        return f"Handed over to {node}.", {"to": node}

    return StructuredTool.from_function(transfer, name=f"transfer_to_{node}", return_direct=True,
                                        response_format="content_and_artifact",
                                        description=f"Hand the story over to {node}.")


def llm_agent(name: str, model: BaseChatModel, tools: dict[str, BaseTool]) -> Callable[..., Any]:
    handoffs = [handoff_tool(n) for n in SUCCESSORS[name] if n not in ("publish_approval", END)]
    agent = create_agent(model, [tools[t] for t in TOOLS[name]] + handoffs,
                         system_prompt=PROMPTS[name], middleware=[Gate()], checkpointer=False)

    def run(query: str, story: str, call: Callable[..., Any]) -> tuple[str, str, Any]:
        out = agent.invoke({"messages": [HumanMessage(f"Task {story}: {query}")]})
        target, pending = SUCCESSORS[name][-1], None
        for message in out["messages"]:
            artifact = message.artifact if isinstance(message, ToolMessage) else None
            if isinstance(artifact, dict):
                target, pending = artifact.get("to", target), artifact.get("pending", pending)
        reply = next(m.text for m in reversed(out["messages"]) if isinstance(m, AIMessage))
        return reply, "publish_approval" if pending else target, pending

    return run


def agent_node(name: str, tools: dict[str, BaseTool], model: BaseChatModel | None) -> Callable[..., Any]:
    primary = llm_agent(name, model, tools) if model is not None else None

    def node(state: State) -> Command:
        request = next(m for m in reversed(state["messages"]) if isinstance(m, HumanMessage))
        update: dict[str, Any] = {}
        try:
            try:
                if primary is None:
                    raise LookupError("no model configured")
                reply, target, pending = primary(request.text, request.id, caller(tools))
            except Failed:
                raise
            except Exception as exc:  # the rule-based twin takes over; the cause is kept
                if primary is not None:
                    update["fallbacks"] = [f"{name}: {type(exc).__name__}: {exc}"]
                reply, target, pending = RULES[name](request.text, request.id, caller(tools))
        except Failed as failed:
            return Command(goto="desk_chief", update={**update, "errors": [f"{name}: {failed}"]})
        update.update(messages=[AIMessage(reply, name=name)], pending=pending)
        if target not in SUCCESSORS[name]:
            update["errors"] = [f"illegal transition {name} -> {target}"]
            target = "desk_chief"
        return Command(goto=target, update=update)

    return node


def publish_approval(tools: dict[str, BaseTool]) -> Callable[[State], Command]:
    def node(state: State) -> Command:
        pending = state["pending"]
        error = None
        while True:  # every answer is replayed on re-run, so a bad one is asked again
            decision = interrupt({"action": "publish_article", "args": pending, "error": error,
                                  "reason": f"more than {APPROVAL_AUDIENCE:,} readers"})
            kind = decision.get("decision") if isinstance(decision, dict) else None
            if kind == "approve" or (kind == "reject" and decision.get("reason")):
                break
            error = "answer {'decision': 'approve'} or {'decision': 'reject', 'reason': ...}"
        if kind == "reject":
            reply = f"publish_article was rejected: {decision['reason']}"
        else:
            result = caller(tools)("publish_article", **pending)
            reply = f"publish_article approved by {decision.get('by') or 'a reviewer'}: {result}"
        return Command(goto=END, update={"pending": None, "messages": [AIMessage(reply, name="publish_approval")]})

    return node


def desk_chief(state: State) -> Command:
    why = (state.get("errors") or ["a person asked for it"])[-1]
    return Command(goto=END, update={"messages": [AIMessage(f"Held for the desk chief: {why}", name="desk_chief")]})


def build_desk_langgraph(db: DeskDB, model: BaseChatModel | None = None, checkpointer: Any = None) -> Any:
    """The desk graph: LLM agents on ``model`` (each falling back to its rules), else the rules."""
    tools = {t.name: t for t in desk_tools(db)}
    graph = StateGraph(State)
    for name in SUCCESSORS:
        graph.add_node(name, agent_node(name, tools, model), destinations=(*SUCCESSORS[name], "desk_chief"))
    graph.add_node("publish_approval", publish_approval(tools), destinations=(END,))
    graph.add_node("desk_chief", desk_chief, destinations=(END,))
    graph.add_edge(START, "drafter")
    return graph.compile(checkpointer=checkpointer)
