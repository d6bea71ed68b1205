"""Rate limits per agent, model and end user: in this process, and shared through Redis and
PostgreSQL by real processes. Over a limit: a bounded wait, then ``RateLimited``, recorded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid

import pytest
from langchain_core.messages import AIMessage
from pyrate_limiter import Duration, Rate

from accord.agents import AgentResult, AgentSpec, ModelResolver
from accord.checkpoints import open_saver
from accord.graphs import Router, Workflow
from accord.guardrails import Limits, RateLimited, RateLimitRule, RateLimitSpec, Scope
from accord.guardrails.rate_limit import Quota, RateLimiters, request_quota
from accord.testing import ScriptedChatModel

REDIS = "redis://127.0.0.1:6379/0"
ONCE = {"requests_per_second": 0.001, "max_wait": 0}
"""One request per 1000 s: a second one is over the limit, whatever the machine's speed."""


def flow(limits: Limits | None = None, spec: AgentSpec | None = None,
         fallback: AgentSpec | None = None, models: ModelResolver | None = None) -> Workflow:
    spec = spec or AgentSpec(id="helper", purpose="t", kind="rules",
                             handler=lambda h, t: AgentResult(f"done: {h.query}"))
    workflow = Workflow("rl", router=Router(default="helper"), max_hops=6, limits=limits,
                        models=models)
    workflow.agent(spec, node="helper")
    if fallback is not None:
        workflow.registry.register(fallback)
    return workflow.transitions({"router": ["helper", "END"], "helper": ["router"]})


def ask(graph, thread: str, user: str | None = "u1", text: str = "hello") -> dict:
    configurable = {"thread_id": thread, **({"user_id": user} if user else {})}
    return graph.invoke({"messages": [{"role": "user", "content": text}]},
                        {"configurable": configurable})


def test_an_end_user_over_their_rate_is_refused_at_the_entry_and_recorded(tmp_path):
    limits = Limits(rate_limits=(RateLimitRule(scope=Scope.USER, **ONCE),))
    with open_saver(f"sqlite:///{tmp_path}/a.db") as saver:
        graph = flow(limits).compile(checkpointer=saver)
        assert ask(graph, "t-1")["tasks"]
        with pytest.raises(RateLimited, match="user 'u1' is over 0.001 requests/s"):
            ask(graph, "t-2")
        [refused] = saver.audit_log("t-2")
        assert (refused.kind, refused.details()["guardrail"]) == ("input_refused", "rate_limited")
        assert saver.threads.get("t-2") is None  # nothing else saved
        assert ask(graph, "t-3", user="u2")["tasks"]  # another user has their own bucket


def test_an_agent_over_its_rate_stops_its_task_with_the_cause_recorded():
    spec = AgentSpec(id="helper", purpose="t", kind="rules", rate_limit=RateLimitSpec(**ONCE),
                     handler=lambda h, t: AgentResult("done"))
    graph = flow(spec=spec).compile()
    assert ask(graph, "t-1")["tasks"]
    out = ask(graph, "t-2")
    task = out["tasks"][out["active_task"]]
    assert task["status"] == "failed" and "agent 'helper' is over" in task["result"]
    [event] = [e for e in out["audit"] if e["kind"] == "rate_limited"]
    assert (event["scope"], event["key"], event["measure"]) == ("agent", "helper", "requests")


def test_a_call_waits_boundedly_for_room_then_goes_through_or_is_refused():
    limiters = RateLimiters()
    waits = Quota(Scope.MODEL, "m", "requests", Rate(1, Duration.SECOND), 1, 30.0, "1 requests/s")
    asyncio.run(limiters.acquire(waits))
    asyncio.run(limiters.acquire(waits))  # waited for the next second: no error
    never = Quota(Scope.MODEL, "n", "requests", Rate(1, Duration.HOUR), 1, 0.2, "1 requests/h")
    asyncio.run(limiters.acquire(never))
    with pytest.raises(RateLimited) as refused:
        asyncio.run(limiters.acquire(never))
    assert refused.value.waited <= 30  # bounded: it gave up instead of waiting an hour
    limiters.close()


def _usage_reply(text: str, tokens: int) -> AIMessage:
    return AIMessage(text, usage_metadata={"input_tokens": tokens - 100, "output_tokens": 100,
                                           "total_tokens": tokens})


def test_tokens_per_minute_count_the_models_usage_and_send_the_next_call_to_the_fallback():
    model = ScriptedChatModel([_usage_reply("one", 1500), _usage_reply("two", 1500)])
    spec = AgentSpec(id="helper", purpose="t", kind="llm", model="small",
                     fallback="helper_rules")
    backup = AgentSpec(id="helper_rules", purpose="t", kind="rules",
                       handler=lambda h, t: AgentResult("rules answered"))
    limits = Limits(rate_limits=(RateLimitRule(scope=Scope.MODEL, tokens_per_minute=2000,
                                               max_wait=0),), expected_output_tokens=0)
    graph = flow(limits, spec, backup, ModelResolver(models={"*": model})).compile()
    assert ask(graph, "t-1")["messages"][-1].content == "one"
    assert ask(graph, "t-2")["messages"][-1].content == "two"  # 1500 + its prompt still fit
    out = ask(graph, "t-3")
    assert out["messages"][-1].content == "rules answered"
    assert model.calls == 2  # the third call was never made
    [limited] = [e for e in out["audit"] if e["kind"] == "rate_limited"]
    assert (limited["scope"], limited["measure"]) == ("model", "tokens")
    [fallback] = [e for e in out["audit"] if e["kind"] == "fallback"]
    assert fallback["error"].startswith("RateLimited: rate limited: model")


_WORKER = textwrap.dedent("""
    import asyncio, sys
    from pyrate_limiter import Duration, Rate
    from accord.guardrails.limits import Scope
    from accord.guardrails.rate_limit import Quota, RateLimited, RateLimiters

    backend, key, tries, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    limiters = RateLimiters(backend)
    quota = Quota(Scope.USER, key, "requests", Rate(5, Duration.HOUR), 1, wait, "5 requests/h")
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()  # both processes start together
    took = 0
    for _ in range(tries):
        try:
            asyncio.run(limiters.acquire(quota)); took += 1
        except RateLimited:
            pass
    limiters.close()
    print(took)
""")


def _two_processes(backend: str, wait: float = 0.0) -> list[int]:
    key = f"shared-{uuid.uuid4().hex[:8]}"
    procs = [subprocess.Popen([sys.executable, "-P", "-c", _WORKER, backend, key, "6", str(wait)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return [int(proc.communicate(timeout=120)[0].strip()) for proc in procs]


def test_two_processes_share_one_limit_through_redis():
    took = _two_processes(REDIS)
    assert sum(took) == 5, took  # 5 in all, not 5 each


def test_an_entry_stamped_later_by_another_process_still_counts_in_redis():
    # another process's clock ran a few ms ahead: its entries reach Redis before this one
    from pyrate_limiter import RateItem

    from accord.guardrails.rate_limit import _maker

    make, client = _maker(REDIS)
    try:
        bucket = make(f"skew-{uuid.uuid4().hex[:8]}", [Rate(5, Duration.HOUR)])
        now = bucket.now()
        assert all(bucket.put(RateItem("other", now + 5)) for _ in range(5))
        assert bucket.put(RateItem("this", now)) is False
    finally:
        client.delete(*client.keys("accord:ratelimit:skew-*"))
        client.close()


def test_two_processes_share_one_limit_through_postgres(postgres_url):
    # pyrate-limiter's PostgreSQL bucket refuses a put while another holds its table lock
    # (NOWAIT): a short bounded wait retries it
    took = _two_processes(postgres_url, wait=0.5)
    assert sum(took) == 5, took


def test_request_quotas_round_rates_below_one_per_second_to_whole_windows():
    quota = request_quota(Scope.USER, "u", RateLimitSpec(requests_per_second=0.5))
    assert (quota.rate.limit, quota.rate.interval) == (1, 2000)


def test_the_cli_refuses_a_user_over_their_rate_with_one_line_and_exit_2(accord, tmp_path):
    (tmp_path / "limits.yaml").write_text(
        "rate_limits:\n  - {scope: user, requests_per_second: 0.001, max_wait: 0}\n"
        "backend: " + REDIS + "\n")
    user = f"cli-{uuid.uuid4().hex[:8]}"  # shared through Redis: each CLI run is a process
    env = {"ACCORD_LIMITS": str(tmp_path / "limits.yaml")}
    first = accord("run", "support", "My app crashes on start", "--no-input", "--user", user,
                   env=env)
    assert first.returncode == 0, first.stderr
    second = accord("run", "support", "My app crashes on start", "--no-input", "--user", user,
                    env=env)
    assert second.returncode == 2
    assert f"rate limited: user '{user}' is over 0.001 requests/s" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
