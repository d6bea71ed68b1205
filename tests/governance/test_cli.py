"""`accord agents …` and `accord flags …` in a real subprocess: the CLI and Python see the same
release rows, version choice and flags; bad input is one line and exit code 2."""

from __future__ import annotations

import json

from accord.agents.canary import bucket

G = ("--graph", "flow.py:build_canary")


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def bad(result, text: str):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert text in lines[0], lines[0]


def test_canary_promote_rollback_and_list(accord):
    ok(accord("agents", "canary", "helper", "1.1.0", "--weight", "20%", *G, "--by", "ana"))
    listed = json.loads(ok(accord("agents", "list", *G, "--json")).stdout)
    helper = next(r for r in listed if r["agent"] == "helper")
    assert (helper["versions"], helper["stable"], helper["canary"], helper["weight"],
            helper["enabled"]) == (["1.0.0", "1.1.0"], "1.0.0", "1.1.0", 20.0, True)

    # four threads the hash sends to the canary and four it does not (the share itself is
    # measured on 200 threads in test_canary.py)
    canary = [t for t in (f"c-{i}" for i in range(200)) if bucket(t, "helper") < 20][:4]
    stable = [t for t in (f"c-{i}" for i in range(200)) if bucket(t, "helper") >= 20][:4]
    threads = canary + stable
    for thread in threads:
        ok(accord("run", "flow.py:build_canary", "hello", "--thread", thread, "--json"))
    stats = {s["version"]: s for s in json.loads(ok(accord("agents", "compare", "helper", *G,
                                                              "--json")).stdout)}
    assert (stats["1.1.0"]["threads"], stats["1.0.0"]["threads"]) == (4, 4)
    assert stats["1.1.0"]["error_rate"] == 0.0

    ok(accord("agents", "rollback", "helper", *G, "--by", "bo"))
    run = json.loads(ok(accord("run", "flow.py:build_canary", "hello", "--thread",
                               next(t for t in (f"n-{i}" for i in range(99))
                                    if bucket(t, "helper") < 20), "--json")).stdout)
    assert run["reply"] == "helper 1.0.0 answered"

    ok(accord("agents", "promote", "helper", "1.1.0", *G, "--by", "cy"))
    run = json.loads(ok(accord("run", "flow.py:build_canary", "hello", "--json")).stdout)
    assert run["reply"] == "helper 1.1.0 answered"

    log = json.loads(ok(accord("agents", "changelog", "helper", *G, "--json")).stdout)
    assert [v["version"] for v in log["versions"]] == ["1.0.0", "1.1.0"]
    assert [(c["field"], c["new"], c["by"]) for c in log["releases"]] == [
        ("canary", "1.1.0", "ana"), ("weight", 20.0, "ana"),
        ("canary", None, "bo"), ("weight", 0.0, "bo"), ("withdrawn", ["1.1.0"], "bo"),
        ("stable", "1.1.0", "cy"), ("withdrawn", [], "cy")]


def test_flags_set_is_seen_by_a_run_from_python_and_the_cli(accord, tmp_path):
    ok(accord("flags", "set", "helper", "off", *G, "--by", "ana"))
    run = json.loads(ok(accord("run", "flow.py:build_canary", "hello", "--json")).stdout)
    assert run["reply"] == "backup answered"
    assert run["fallbacks"][0]["error"] == "AgentDisabled: agent helper is disabled by its flag"

    from accord.checkpoints import open_saver
    from accord.graphs.catalog import load_workflow

    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = load_workflow(f"{tmp_path}/flow.py:build_canary").compile(checkpointer=saver)
        out = graph.invoke({"messages": [{"role": "user", "content": "hi"}]},
                           {"configurable": {"thread_id": "py-1"}})
    assert out["messages"][-1].content == "backup answered"

    flags = json.loads(ok(accord("flags", "list", *G, "--json")).stdout)
    assert {"agent": "helper", "enabled": False, "updated_by": "ana"} in flags
    ok(accord("flags", "set", "helper", "on", *G, "--by", "bo"))
    text = ok(accord("agents", "changelog", "helper", *G)).stdout
    assert "ana: helper enabled true -> false" in text
    assert "bo: helper enabled false -> true" in text


def test_retire_is_refused_while_a_transition_targets_the_agent(accord):
    bad(accord("agents", "retire", "helper", *G), "cannot retire agent helper: ")
    bad(accord("agents", "retire", "helper", *G), "transition router -> helper targets it")
    bad(accord("agents", "retire", "backup", *G), "agent helper@1.0.0 falls back to it")


def test_bad_input_is_one_line_and_exit_2_and_changes_nothing(accord, tmp_path):
    ok(accord("agents", "canary", "helper", "1.1.0", "--weight", "20", *G))
    bad(accord("agents", "canary", "helper", "1.1.0", "--weight", "150%", *G),
        "canary weight of agent helper 150% is out of range")
    bad(accord("agents", "canary", "helper", "1.1.0", "--weight", "many", *G),
        "--weight 'many' is not a percentage")
    bad(accord("agents", "canary", "helper", "7.0.0", "--weight", "5", *G),
        "agent 'helper' has no version 7.0.0")
    bad(accord("flags", "set", "nobody", "off", *G), "unknown agent 'nobody'")
    bad(accord("flags", "set", "helper", "maybe", *G), "flag state 'maybe' is not 'on' or 'off'")
    bad(accord("agents", "rollback", "backup", *G), "agent backup has no canary or promotion")
    (tmp_path / "specs.yaml").write_text("- id: clerk\n  purpose: [oops\n")
    bad(accord("agents", "check", "specs.yaml"), "specs.yaml:3:1: malformed YAML")
    (tmp_path / "specs.yaml").write_text(
        "- {id: clerk, version: 1.0.0, purpose: p, kind: rules, tools: [a, b],"
        " handler: 'builtins:print'}\n"
        "- {id: clerk, version: 1.1.0, purpose: p, kind: rules, tools: [a],"
        " handler: 'builtins:print'}\n")
    bad(accord("agents", "check", "specs.yaml"),
        "agent clerk 1.1.0: tool 'b' removed is a breaking change from 1.0.0")
    listed = json.loads(ok(accord("agents", "list", *G, "--json")).stdout)
    helper = next(r for r in listed if r["agent"] == "helper")
    assert (helper["canary"], helper["weight"]) == ("1.1.0", 20.0)
