"""Cost budgets: usage from the models' metadata, priced from configuration, recorded beside the
checkpoints; a spent budget goes to the smaller tier, then the rule-based agent, then stops."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from accord.agents import AgentResult, AgentSpec, ModelResolver, read_only
from accord.checkpoints import open_saver
from accord.graphs import Router, Workflow
from accord.guardrails import (
    BudgetExhausted,
    BudgetSpec,
    Choice,
    Limits,
    LimitsConfigError,
    decide,
    limits_from,
    load_limits,
    usage_for,
)
from accord.testing import ScriptedChatModel

LARGE, SMALL = "openai:gpt-4o", "openai:gpt-4o-mini"
PRICES = {LARGE: {"input": 1000, "output": 1000}, SMALL: {"input": 400, "output": 400}}
"""USD per million tokens: a large call of 2,600 tokens costs $2.60, a small one of 2,000 $0.80."""


def test_decide_is_the_whole_ladder():
    ladder = [("large", 0.5), ("small", 0.2)]
    assert decide(1.0, ladder, has_rules=True).choice is Choice.RUN
    assert decide(0.3, ladder, has_rules=True) == decide(0.3, ladder, has_rules=False)
    assert decide(0.3, ladder, has_rules=True).model == "small"
    assert decide(0.3, ladder, has_rules=True).choice is Choice.SMALLER
    assert decide(0.1, ladder, has_rules=True).choice is Choice.RULES
    assert decide(0.1, ladder, has_rules=False).choice is Choice.STOP


def usage(text: str = "", input_tokens: int = 0, output_tokens: int = 0, **extra) -> AIMessage:
    return AIMessage(text, usage_metadata={"input_tokens": input_tokens,
                                           "output_tokens": output_tokens,
                                           "total_tokens": input_tokens + output_tokens}, **extra)


@read_only
@tool
def lookup(what: str) -> str:
    """Look something up."""
    return f"found {what}"


def ladder_flow(big: ScriptedChatModel, small: ScriptedChatModel, limits: Limits,
                fallback: bool = True) -> Workflow:
    spec = AgentSpec(id="helper", purpose="t", kind="llm", model="large", tools=("lookup",),
                     fallback="helper_rules" if fallback else None)
    flow = Workflow("budget", router=Router(default="helper"), max_hops=6, tools=[lookup],
                    models=ModelResolver(models={"large": big, "small": small}), limits=limits)
    flow.agent(spec, node="helper")
    flow.registry.register(AgentSpec(id="helper_rules", purpose="t", kind="rules",
                                     handler=lambda h, t: AgentResult("rules answered")))
    return flow.transitions({"router": ["helper", "END"], "helper": ["router"]})


def ask(graph, thread: str, user: str = "u1") -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": "help me"}]},
                        {"configurable": {"thread_id": thread, "user_id": user}})


def kinds(out: dict) -> list[str]:
    return [e["kind"] for e in out["audit"]]


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def saver(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/accord.db"
    elif request.param == "postgres":
        url = request.getfixturevalue("pg_schema_url")
    else:
        url = "memory://"
    with open_saver(url) as opened:
        yield opened


def test_a_user_over_budget_goes_to_the_smaller_tier_then_the_rules_then_stops(saver):
    big = ScriptedChatModel([usage("large answered", 2000, 600)])
    small = ScriptedChatModel([usage(tool_calls=[{"name": "lookup", "args": {"what": "x"},
                                                  "id": "c1", "type": "tool_call"}],
                                     input_tokens=1000, output_tokens=1000), "never"])
    limits = limits_from({"prices": PRICES, "budgets": [{"scope": "user", "usd": 3.0}],
                          "expected_output_tokens": 500})
    graph = ladder_flow(big, small, limits).compile(checkpointer=saver)

    first = ask(graph, "b-1")  # $3 left: the large tier ($2.60)
    assert first["messages"][-1].content == "large answered"
    assert (big.calls, small.calls) == (1, 0)

    second = ask(graph, "b-2")  # $0.40 left: too little for large, enough for small...
    [down] = [e for e in second["audit"] if e["kind"] == "budget_downgrade"]
    assert (down["model"], down["to"], down["scope"]) == ("large", "small", "user")
    assert small.calls == 1  # ...which spent $0.80: its next call is not paid for
    [spent] = [e for e in second["audit"] if e["kind"] == "budget_exhausted"]
    assert spent["reason"] == "budget exhausted: user 'u1' today spent $3.4000 of $3.0000"
    [fallback] = [e for e in second["audit"] if e["kind"] == "fallback"]
    assert fallback["fallback"] == "helper_rules"
    assert fallback["error"].startswith("BudgetExhausted: budget exhausted")
    assert second["messages"][-1].content == "rules answered"

    with pytest.raises(BudgetExhausted, match="user 'u1' today spent"):  # a clear stop
        ask(graph, "b-3")
    assert saver.audit_log("b-3")[0].details()["guardrail"] == "budget_exhausted"
    assert (big.calls, small.calls) == (1, 1)

    rows = {r.group: r for r in usage_for(saver).summary("model")}
    assert (rows[LARGE].input_tokens, rows[LARGE].output_tokens) == (2000, 600)
    assert rows[LARGE].cost == pytest.approx(2.6) and rows[SMALL].cost == pytest.approx(0.8)
    assert [r.group for r in usage_for(saver).summary("user")] == ["u1"]
    assert ask(graph, "b-4", user="u2")["messages"][-1].content  # another user's budget


def test_an_agent_with_no_fallback_stops_clearly_when_its_budget_cannot_pay():
    big = ScriptedChatModel(["never"])
    limits = limits_from({"prices": PRICES})
    flow = ladder_flow(big, ScriptedChatModel(["never"]), limits, fallback=False)
    flow._agents["helper"] = flow._agents["helper"].model_copy(
        update={"budget": BudgetSpec(usd=0.0001)})
    out = ask(flow.compile(), "s-1")
    assert big.calls == 0
    task = out["tasks"][out["active_task"]]
    assert task["status"] == "failed"
    assert task["result"].startswith("budget exhausted: agent 'helper' today spent $0.0000")
    assert "budget_exhausted" in kinds(out) and "agent_failed" not in kinds(out)


def test_a_price_table_missing_a_model_is_refused_naming_the_place(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text(f"prices:\n  {LARGE}: {{input: 1, output: 1}}\nbudgets:\n  - {{scope: day, usd: 5}}\n")
    with pytest.raises(LimitsConfigError) as missing:
        ladder_flow(ScriptedChatModel([]), ScriptedChatModel([]), load_limits(path)).compile()
    assert str(missing.value) == (f"{path}: prices: no price for model '{SMALL}' (agent helper, "
                                  f"model small); priced: {LARGE}")


@pytest.mark.parametrize(("text", "error"), [
    ("budgets: [{scope: user, usd: -1}]", "budgets.0.usd: Input should be greater than 0"),
    ("budgets: [{scope: model, usd: 1}]", "budgets.0: budgets count per agent, user, run or day"),
    ("rate_limits: [{scope: user}]", "rate_limits.0: a rate limit needs requests_per_second"),
    ("rate_limits: [{scope: day, requests_per_second: 1}]", "rate_limits.0: rate limits count"),
    ("prices: {m: {input: 1}}", "prices.m.output: Field required"),
    ("budget: 3", "budget: Extra inputs are not permitted"),
    ("backend: mysql://x", "backend 'mysql://x' is not memory://"),
    ("- 1", "expected a mapping"),
    ("prices: [", "while parsing a flow"),
])
def test_malformed_limits_are_one_error_naming_the_place(tmp_path, text, error):
    path = tmp_path / "limits.yaml"
    path.write_text(text + "\n")
    with pytest.raises(LimitsConfigError) as bad:
        load_limits(path)
    message = str(bad.value)
    assert message.startswith(f"{path}: ") and error in message and "\n" not in message


FLOW = '''
from langchain_core.messages import AIMessage
from accord.agents import AgentResult, AgentSpec, ModelResolver
from accord.graphs import Router, Workflow
from accord.guardrails import load_limits
from accord.testing import ScriptedChatModel

def usage(text, i, o):
    return AIMessage(text, usage_metadata={"input_tokens": i, "output_tokens": o,
                                           "total_tokens": i + o})

def build():
    models = ModelResolver(models={"large": ScriptedChatModel([usage("large answered", 2000, 600)]),
                                   "small": ScriptedChatModel([usage("small answered", 1000, 1000)])})
    flow = Workflow("budget", router=Router(default="helper"), max_hops=6, models=models,
                    limits=load_limits("limits.yaml"))
    flow.agent(AgentSpec(id="helper", purpose="t", kind="llm", model="large",
                         fallback="helper_rules"), node="helper")
    flow.registry.register(AgentSpec(id="helper_rules", purpose="t", kind="rules",
                                     handler=lambda h, t: AgentResult("rules answered")))
    return flow.transitions({"router": ["helper", "END"], "helper": ["router"]})
'''


def test_the_cli_runs_under_a_budget_shows_usage_and_stops_with_exit_2(accord, tmp_path):
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "limits.yaml").write_text(
        f"prices:\n  {LARGE}: {{input: 1000, output: 1000}}\n  {SMALL}: {{input: 400, output: 400}}\n"
        "budgets:\n  - {scope: user, usd: 3.0}\nexpected_output_tokens: 500\n")
    run = ("run", "flow.py:build", "help me", "--no-input", "--user", "ana")
    first = accord(*run)
    assert first.returncode == 0, first.stderr
    assert "large answered" in first.stdout
    second = accord(*run)
    assert second.returncode == 0, second.stderr
    assert "small answered" in second.stdout  # the smaller tier; $3.40 spent now
    third = accord(*run)
    assert third.returncode == 2
    assert third.stderr.strip() == "error: budget exhausted: user 'ana' today spent $3.4000 of $3.0000"
    shown = accord("usage", "--by", "user")
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "ana" in line)
    assert row.split("│")[2].strip() == "2" and "3.4000" in row
    assert accord("usage", "--by", "agent", "--json").stdout.count('"helper"') == 1
    bad = accord("usage", "--by", "colour")
    assert bad.returncode == 2 and "--by must be one of agent, user, day, model" in bad.stderr


def test_the_cli_names_a_missing_price_with_exit_2(accord, tmp_path):
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "limits.yaml").write_text(
        f"prices:\n  {LARGE}: {{input: 1, output: 1}}\nbudgets:\n  - {{scope: day, usd: 5}}\n")
    done = accord("run", "flow.py:build", "help me", "--no-input")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: limits.yaml: prices: no price for model '{SMALL}' "
                                   "(agent helper, model small); priced: openai:gpt-4o")


def test_an_agents_own_rate_limit_and_budget_load_from_its_yaml_spec(tmp_path):
    from accord.agents import SpecError, load_specs

    path = tmp_path / "agents.yaml"
    path.write_text("- {id: helper, purpose: t, model: small,"
                    " rate_limit: {requests_per_second: 2, tokens_per_minute: 9000},"
                    " budget: {usd: 1.5}}\n")
    [spec] = load_specs(path)
    assert (spec.rate_limit.requests_per_second, spec.rate_limit.tokens_per_minute,
            spec.budget.usd) == (2, 9000, 1.5)
    path.write_text("- {id: helper, purpose: t, model: small, budget: {usd: zero}}\n")
    with pytest.raises(SpecError, match=r"agents.yaml: agent helper: budget.usd: Input should be"):
        load_specs(path)
