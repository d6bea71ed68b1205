"""Rule-based versions of the desk's agents: deterministic, no model, the offline default and
the LLM agents' fallbacks. Each takes the query-only handoff and its tools and says where the
story goes next, among the successors the transition table declares for it."""

from __future__ import annotations

from accord.agents import AgentResult, Handoff, ToolCalls
from accord.graphs.desk.newsroom import compose


def drafter_rules(handoff: Handoff, tools: ToolCalls) -> AgentResult:
    """Draft from the sources, leaving out what the last fact check found unsupported."""
    last = tools("read_draft", story=handoff.task_id)
    facts = tools("find_sources", topic=handoff.query)
    draft = compose(handoff.query, facts, last.get("unsupported", []))
    if not draft["body"]:
        return AgentResult("There are no sourced facts on this topic to draft from.", status="failed")
    saved = tools("save_draft", story=handoff.task_id, **draft)
    return AgentResult(f"Draft {saved['revision']}: {draft['title']}.", status="handoff",
                       handoff_to="fact_checker")


def fact_checker_rules(handoff: Handoff, tools: ToolCalls) -> AgentResult:
    """Send the draft back to the drafter while a claim is unsupported, else on to the editor."""
    draft = tools("read_draft", story=handoff.task_id)
    check = tools("check_facts", draft_id=draft["id"])
    if check["unsupported"]:
        return AgentResult("Unsupported: " + " ".join(check["unsupported"]), status="handoff",
                           handoff_to="drafter")
    return AgentResult("Every claim is sourced.", status="handoff", handoff_to="editor")


def editor_rules(handoff: Handoff, tools: ToolCalls) -> AgentResult:
    """Pass a draft of two sentences or more on to the publisher."""
    draft = tools("read_draft", story=handoff.task_id)
    if draft["body"].count(".") < 2:
        return AgentResult(f"{draft['title']!r} is too thin to publish.", status="failed")
    return AgentResult(f"{draft['title']!r} is ready for {draft['audience']:,} readers.",
                       status="handoff", handoff_to="publisher")


def publisher_rules(handoff: Handoff, tools: ToolCalls) -> AgentResult:
    """Publish the story; a large audience waits for an editor's approval first."""
    draft = tools("read_draft", story=handoff.task_id)
    args = {"story": handoff.task_id, "audience": draft["audience"]}
    review = tools.review("publish_article", args)
    if review is not None and review.decision == "reject":  # the editor said no: not published
        return AgentResult(f"Not published: {review.message}", status="failed")
    action = tools.gate("publish_article", args, why=f"{draft['title']!r} to {draft['audience']:,} readers")
    if action is not None:
        return AgentResult("Publishing waits for an editor's approval.", status="needs_approval",
                           action=action)
    article = tools("publish_article", **args)
    return AgentResult(f"Published article #{article['article_id']}: {article['title']}.", output=article)
