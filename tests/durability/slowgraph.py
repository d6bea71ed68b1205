"""A one-agent graph whose agent waits for the test: it writes a file when it starts and, when
``SLOW_RELEASE`` names a file, waits until that file exists (an event the test controls, with a
deadline). Imported by the CLI processes the durability tests start (``slowgraph:build``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from accord.agents import AgentResult, AgentSpec
from accord.graphs import Router, Workflow


def slow(handoff, tools):
    Path(os.environ["SLOW_STARTED"]).write_text(str(os.getpid()))
    release = os.environ.get("SLOW_RELEASE")
    if release:
        deadline = time.monotonic() + 120
        while not Path(release).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never released the agent")
            time.sleep(0.02)
    return AgentResult(f"finished by {os.environ.get('SLOW_NAME', '?')}")


def build():
    spec = AgentSpec(id="slow", purpose="Takes its time", kind="rules", handler=slow)
    return (Workflow("slow", router=Router(default="slow"), max_hops=4).agent(spec)
            .transitions({"router": ["slow", "END"], "slow": ["router"]}))
