"""Rogue-agent alerts: an agent that keeps failing is flagged after the threshold, people are told,
and with ``disable`` its flag is switched off in the database so its fallback answers the next
request (in any process); reviewers who keep rejecting an agent's actions flag it too."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from langgraph.types import Command
from prometheus_client import REGISTRY

from accord.agents import AgentRegistry, AgentResult, AgentSpec, RetrySpec
from accord.agents.releases import releases_for
from accord.agents.rollout import set_enabled
from accord.checkpoints import open_saver
from accord.graphs import Router, Workflow
from accord.graphs.support import SupportDB, build_support
from accord.observability import alerts, notify
from accord.observability.alerts import AgentMonitor, AlertConfigError, AlertThresholds
from accord.observability.notify import NotifyConfig
from accord.records import AuditKind, audit_event

pytestmark = pytest.mark.usefixtures("quiet_notifier")
FLAKY, BACKUP = "flaky", "backup"


def flagged(agent: str) -> float | None:
    return REGISTRY.get_sample_value("accord_agent_flagged", {"agent": agent})


class Broken:
    """An agent that always fails, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, handoff, tools) -> AgentResult:
        self.calls += 1
        raise RuntimeError("flaky lost its database")


def backup(handoff, tools) -> AgentResult:
    return AgentResult(f"backup answered: {handoff.query}")


def rogue_workflow(broken: Broken) -> Workflow:
    agent = AgentSpec(id=FLAKY, purpose="answers, badly", kind="rules", handler=broken,
                      fallback=BACKUP, retry=RetrySpec(max_attempts=1, initial_interval=0))
    spare = AgentSpec(id=BACKUP, purpose="answers when flaky cannot", kind="rules",
                      handler=backup)
    return (Workflow("rogue", router=Router(default=FLAKY), max_hops=4,
                     registry=AgentRegistry([spare]))
            .agent(agent)
            .transitions({"router": [FLAKY, "END"], FLAKY: ["router"]}))


def ask(graph, thread: str, text: str = "where is my parcel?") -> dict[str, Any]:
    return graph.invoke({"messages": [{"role": "user", "content": text}]},
                        {"configurable": {"thread_id": thread}})


def test_a_failing_agent_is_flagged_told_and_switched_off(tmp_path, receiver, durable_url):
    threshold = AlertThresholds(error_rate=0.5, min_runs=3, disable=True)
    alerts.configure_alerts(threshold)
    notify.configure(NotifyConfig(webhook=receiver.url, console_url="http://console.test"))
    broken = Broken()
    workflow = rogue_workflow(broken)
    threads = [f"r-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    with open_saver(durable_url) as saver, open_saver(durable_url) as other_process:
        graph = workflow.compile(checkpointer=saver)
        for thread in threads[:2]:
            out = ask(graph, thread)
            assert out["messages"][-1].content.startswith("backup answered")
        assert alerts.monitor().flagged == {} and releases_for(saver).get(FLAKY).enabled
        ask(graph, threads[2])  # the third failed run of three: 100% > 50%
        assert broken.calls == 3
        flag = alerts.monitor().flagged[FLAKY]
        assert (flag.check, flag.value, flag.disabled) == ("error_rate", 1.0, True)
        assert flagged(FLAKY) == 1
        release = releases_for(other_process).get(FLAKY)  # in the database, for every process
        assert release.enabled is False and release.updated_by == "accord.alerts"
        [event] = [e.details() for e in saver.audit_log(threads[2])
                   if e.kind is AuditKind.AGENT_FLAGGED]
        assert event["check"] == "error_rate" and event["disabled"] is True

        [body] = receiver.wait_for(lambda bodies: len(bodies) >= 1)
        assert body["text"].startswith("Agent flaky flagged: error_rate")
        assert "switched off: its fallback answers" in body["text"]
        assert body["blocks"][2]["elements"][0]["url"] == f"http://console.test/console/inbox/{threads[2]}"

        out = ask(graph, threads[3])  # the next request: the fallback answers, flaky not called
        assert out["messages"][-1].content == "backup answered: where is my parcel?"
        assert broken.calls == 3
        audit = saver.audit_log(threads[3])
        [fallback] = [e.details() for e in audit if e.kind is AuditKind.FALLBACK]
        assert fallback["error"] == "AgentDisabled: agent flaky is disabled by its flag"
        [run] = [e.details() for e in audit if e.kind is AuditKind.AGENT_RUN]
        assert run["outcome"] == "disabled"

        set_enabled(releases_for(other_process), workflow.registry, FLAKY, True, by="ana")
        ask(graph, f"r-back-{uuid.uuid4().hex[:6]}")  # switched on by a person: judged afresh
        assert broken.calls == 4
        assert FLAKY not in alerts.monitor().flagged and flagged(FLAKY) == 0
    assert notify.notifier().flush(10) and len(receiver.bodies) == 1  # flagged once


def test_an_agent_that_answers_again_is_no_longer_flagged(tmp_path):
    alerts.configure_alerts(AlertThresholds(error_rate=0.5, min_runs=2))
    broken = Broken()
    workflow = rogue_workflow(broken)
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = workflow.compile(checkpointer=saver)
        ask(graph, "u-1")
        ask(graph, "u-2")
        assert FLAKY in alerts.monitor().flagged and flagged(FLAKY) == 1
        assert releases_for(saver).get(FLAKY).enabled  # disable is off: only flagged
        broken.__class__ = type("Fixed", (Broken,), {
            "__call__": lambda self, h, t: AgentResult("flaky answered")})
        out = ask(graph, "u-3")
        assert out["messages"][-1].content == "flaky answered"
        assert FLAKY in alerts.monitor().flagged  # 2 failed of 3: still above 50%
        ask(graph, "u-4")
    assert alerts.monitor().flagged == {} and flagged(FLAKY) == 0  # 2 of 4: not above 50%


def test_reviewers_rejecting_an_agents_refunds_flag_it(tmp_path, receiver):
    alerts.configure_alerts(AlertThresholds(rejection_rate=0.5, min_decisions=2))
    notify.configure(NotifyConfig(webhook=receiver.url))
    workflow = build_support(db=SupportDB(tmp_path / "support.db"))
    reject = Command(resume={"decisions": [{"type": "reject", "message": "not eligible"}]})
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = workflow.compile(checkpointer=saver)
        for i in range(2):
            config = {"configurable": {"thread_id": f"rej-{i}"}}
            graph.invoke({"messages": [{"role": "user", "content":
                          "I was charged twice for INV-1004. Please refund $150."}]}, config)
            graph.invoke(reject, config)
    flag = alerts.monitor().flagged["billing_rules"]
    assert (flag.check, flag.value) == ("rejection_rate", 1.0)
    bodies = receiver.wait_for(lambda b: any("flagged" in x["text"] for x in b))
    assert any(b["text"].startswith("Agent billing_rules flagged: rejection_rate")
               for b in bodies)


def handle(thread: str = "t") -> Any:
    return SimpleNamespace(spec=SimpleNamespace(thread_id=thread, graph="g"), saver=None)


def test_trips_and_tokens_count_over_a_sliding_window():
    now = [0.0]
    monitor = AgentMonitor(AlertThresholds(window_seconds=60, guardrail_trips=2, tokens=1000),
                           clock=lambda: now[0])
    trip = audit_event(AuditKind.PERMISSION_DENIED, agent="a", tool="pay")
    assert monitor.observe(handle(), [trip, trip]) == []  # 2 trips: not more than 2
    now[0] = 61.0  # the first two leave the window
    assert monitor.observe(handle(), [trip, trip]) == []
    [flag] = monitor.observe(handle(), [trip])
    assert (flag.agent, flag.check, flag.value) == ("a", "guardrail_trips", 3)
    run = audit_event(AuditKind.AGENT_RUN, agent="b", outcome="ok", tokens=600)
    assert monitor.observe(handle(), [run]) == []
    [flag] = monitor.observe(handle(), [run])
    assert (flag.agent, flag.check, flag.value) == ("b", "tokens", 1200)


def test_thresholds_from_python_yaml_and_environment(tmp_path):
    assert not AlertThresholds().enabled  # all checks off by default
    path = tmp_path / "alerts.yaml"
    path.write_text("alerts:\n  error_rate: 0.25\n  min_runs: 10\n  disable: true\n")
    from_file = AlertThresholds.from_yaml(path)
    assert (from_file.error_rate, from_file.min_runs, from_file.disable) == (0.25, 10, True)
    env = AlertThresholds.from_env({"ACCORD_ALERTS_FILE": str(path), "ACCORD_ALERT_MIN_RUNS": "4",
                                    "ACCORD_ALERT_COST": "2.5", "ACCORD_ALERT_WINDOW": "30"})
    assert (env.error_rate, env.min_runs, env.cost, env.window_seconds) == (0.25, 4, 2.5, 30)
    with pytest.raises(AlertConfigError, match="not a share"):
        AlertThresholds(error_rate=2)
    with pytest.raises(AlertConfigError, match="not a valid value"):
        AlertThresholds.from_env({"ACCORD_ALERT_TOKENS": "many"})
    path.write_text("alerts:\n  eror_rate: 0.2\n")
    with pytest.raises(AlertConfigError, match="unknown alert setting"):
        AlertThresholds.from_yaml(path)
