"""Agents as data: AgentSpec validation, the registry's responsibility check, YAML loading."""

from __future__ import annotations

import sys
import textwrap

import pytest
from pydantic import ValidationError

from accord.agents import (
    AgentRegistry,
    AgentResult,
    AgentSpec,
    RegistryError,
    SpecError,
    load_specs,
)
from accord.graphs import KeywordRule, Router, Workflow


def handler(handoff, tools):
    return AgentResult("ok")


def spec(agent_id: str, priority: int | None = None, **kwargs) -> AgentSpec:
    fields = {"kind": "rules", "purpose": "test", "handler": handler,
              "responsibilities": ("refunds",), **kwargs}
    return AgentSpec(id=agent_id, priority=priority, **fields)


# registry ----------------------------------------------------------------------------------

def test_two_agents_claiming_one_responsibility_without_priority():
    with pytest.raises(RegistryError, match=r"responsibility 'refunds' is claimed by a and b"):
        AgentRegistry([spec("a"), spec("b")])


def test_equal_priorities_are_no_tie_breaker():
    with pytest.raises(RegistryError, match="without distinct priorities"):
        AgentRegistry([spec("a", priority=5), spec("b", priority=5)])


def test_distinct_priorities_pick_the_higher_owner():
    registry = AgentRegistry([spec("a", priority=1), spec("b", priority=7)])
    assert registry.owners()["refunds"].id == "b"


def test_a_rejected_registration_leaves_the_registry_unchanged():
    registry = AgentRegistry([spec("a")])
    with pytest.raises(RegistryError):
        registry.register(spec("b"))
    assert "b" not in registry
    assert registry.owners()["refunds"].id == "a"


def test_workflow_agent_conflict_is_a_registry_error():
    workflow = Workflow("t", router=Router(default="a")).agent(spec("a"))
    with pytest.raises(RegistryError, match="claimed by a and b"):
        workflow.agent(spec("b"))


def test_registry_keeps_versions_and_refuses_a_duplicate():
    registry = AgentRegistry([spec("a", version="1.0.0"), spec("a", version="1.10.0"),
                              spec("a", version="1.9.0")])
    assert registry.get("a").version == "1.10.0"
    assert registry.get("a", "1.9.0").version == "1.9.0"
    with pytest.raises(RegistryError, match="a@1.9.0 is already registered"):
        registry.register(spec("a", version="1.9.0"))


# spec validation ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "a", "version": "1.0"}, "version '1.0' is not semantic"),
        ({"id": "a", "version": "v1.0.0"}, "is not semantic"),
        ({"id": "Billing-Agent"}, "agent id 'Billing-Agent' must be lower_snake_case"),
        ({"id": "1st"}, "must be lower_snake_case"),
        ({"id": "a", "kind": "llm"}, "LLM agent 'a' needs a model or tier"),
        ({"id": "a", "kind": "rules"}, "rule-based agent 'a' needs a callable handler"),
        ({"id": "a", "kind": "rules", "handler": "no_colon_here"}, "is not of the form"),
        ({"id": "a", "model": "small", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_spec_validation(fields, message):
    with pytest.raises(ValidationError, match=message):
        AgentSpec(purpose="test", **fields)


def test_valid_specs():
    llm = AgentSpec(id="billing_v2", purpose="p", model="small", version="2.0.0-rc.1+build.7")
    assert (llm.kind, llm.key) == ("llm", "billing_v2@2.0.0-rc.1+build.7")
    rules = AgentSpec(id="r", purpose="p", kind="rules",
                      handler="accord.graphs.support.agents:tech_rules")
    assert callable(rules.handler) and rules.handler.__name__ == "tech_rules"


# YAML --------------------------------------------------------------------------------------

MODULE = "accord_test_greeter_agents"

HANDLERS = '''
from accord.agents import AgentResult

def greet(handoff, tools):
    return AgentResult(f"Hello! You said: {handoff.query}", output={"greeted": True})
'''

SPEC = f"""
- id: greeter
  version: 2.1.0
  kind: rules
  purpose: Says hello.
  responsibilities: [greetings]
  handler: {MODULE}:greet
"""


@pytest.fixture
def greeter_module(tmp_path, monkeypatch):
    """An importable module with a rule-based handler, as a user's project would have."""
    (tmp_path / f"{MODULE}.py").write_text(HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield
    sys.modules.pop(MODULE, None)


def test_load_specs_from_a_yaml_file(tmp_path, greeter_module):
    path = tmp_path / "greeter.yaml"
    path.write_text(SPEC)
    [greeter] = load_specs(path)
    assert (greeter.id, greeter.version, greeter.kind) == ("greeter", "2.1.0", "rules")
    assert greeter.handler.__module__ == MODULE and greeter.handler.__name__ == "greet"
    assert greeter.responsibilities == ("greetings",)


def test_load_specs_from_a_folder(tmp_path, greeter_module):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "a_greeter.yaml").write_text(SPEC)
    (folder / "b_echo.yml").write_text(textwrap.dedent("""
        id: echo
        purpose: Repeats.
        model: small
    """))
    assert [s.id for s in load_specs(folder)] == ["greeter", "echo"]


def test_a_bad_spec_in_yaml_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- id: broken\n  purpose: x\n  version: '1'\n  model: small\n")
    with pytest.raises(SpecError, match=r"bad.yaml: agent broken: version: version '1' is not semantic"):
        load_specs(path)


def test_adding_an_agent_is_configuration(tmp_path, greeter_module):
    """A YAML file plus a route is all it takes for a new agent to answer requests."""
    path = tmp_path / "greeter.yaml"
    path.write_text(SPEC)
    registry = AgentRegistry(load_specs(path))
    workflow = Workflow("hello", router=Router(default="greeter", rules=(KeywordRule("greeter", ("hello",)),)),
                        registry=registry, max_hops=4)
    workflow.agent(registry.get("greeter")).transitions({"router": ["greeter", "END"], "greeter": ["router"]})
    out = workflow.compile().invoke({"messages": [{"role": "user", "content": "hello there"}]})
    assert out["messages"][-1].content == "Hello! You said: hello there"
    assert out["outputs"]["greeter"]["version"] == "2.1.0"
    assert out["outputs"]["greeter"]["output"] == {"greeted": True}
    assert [t["status"] for t in out["tasks"].values()] == ["completed"]


def twin_handler(handoff, tools):
    return AgentResult(f"twin of {handoff.query}")


def test_an_llm_agent_declares_its_rule_based_twin(tmp_path):
    file = tmp_path / "agents.yaml"
    file.write_text(textwrap.dedent(f"""
        - id: writer
          purpose: Writes
          model: small
          reads: [topic]
          rules: {__name__}:twin_handler
    """))
    [llm] = load_specs(file)
    twin = llm.twin()
    assert (twin.id, twin.kind, twin.handler, twin.reads) == ("writer_rules", "rules", twin_handler, ("topic",))
    with pytest.raises(ValidationError, match="rule-based twin"):
        AgentSpec(id="plain", purpose="x", kind="rules", handler=handler, rules=twin_handler)

    def build(use_llm: bool) -> Workflow:
        return (Workflow("w", router=Router(default="writer"), use_llm=use_llm, max_hops=4).agent(llm)
                .transitions({"router": ["writer", "END"], "writer": ["router"]}))

    offline = build(False)
    assert offline._agents["writer"].id == "writer_rules"  # the twin runs in the agent's place
    out = offline.compile().invoke({"messages": [{"role": "user", "content": "tides"}]})
    assert out["messages"][-1].content == "twin of tides"
    assert out["outputs"]["writer"]["agent"] == "writer_rules"

    online = build(True)
    assert [h.agent for h in online._agents["writer"].fallback] == ["writer_rules"]
    assert "writer_rules" in online.registry


def test_a_failing_llm_agent_falls_back_to_its_twin_recorded():
    from accord.agents import ModelResolver
    from accord.testing import ScriptedChatModel

    llm = AgentSpec(id="writer", purpose="Writes", model="small", rules=twin_handler)
    model = ScriptedChatModel([ValueError("the provider refused")])
    workflow = (Workflow("w", router=Router(default="writer"), use_llm=True, max_hops=4,
                         models=ModelResolver(models={"*": model})).agent(llm)
                .transitions({"router": ["writer", "END"], "writer": ["router"]}))
    out = workflow.compile().invoke({"messages": [{"role": "user", "content": "tides"}]})
    [fallback] = [e for e in out["audit"] if e["kind"] == "fallback"]
    assert (fallback["agent"], fallback["fallback"]) == ("writer", "writer_rules")
    assert "the provider refused" in fallback["error"]
    assert out["messages"][-1].content == "twin of tides"
