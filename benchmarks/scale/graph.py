"""The graph section 8 runs in ``accord serve`` and ``accord worker`` processes.

The support workflow with every agent on the benchmarks' scripted model (50 ms per call, as in
section 3) and no approvals, loaded by reference: ``benchmarks/scale/graph.py:build``. The
scripted model's labels come from the same seeded workload the load client sends.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if "benchmarks" not in sys.modules:  # loaded by file from another process: the package first
    _spec = importlib.util.spec_from_file_location("accord_bench_entry", HERE.parent / "run.py")
    assert _spec is not None and _spec.loader is not None
    _entry = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_entry)
    _entry._package()

from accord.agents import ModelResolver  # noqa: E402
from accord.graphs import Workflow  # noqa: E402
from accord.graphs.support import SupportDB, build_support  # noqa: E402
from benchmarks.llm import scripted_model  # noqa: E402
from benchmarks.workload import build_workload, flatten, labels_of  # noqa: E402

LATENCY = 0.05
"""Seconds per model call."""
SEED = 9


def texts() -> list[str]:
    """The requests the load client sends: routed by keyword, no refund (an invoice's balance
    would run out under load), none for a human."""
    convos = build_workload(60, follow_ups=0, seed=SEED)
    return [r.text for r in flatten(convos)
            if r.keyword and r.label != "human_triage" and "refund" not in r.text.lower()]


def build() -> Workflow:
    labels = labels_of(build_workload(60, follow_ups=0, seed=SEED))
    model = scripted_model(labels, latency=LATENCY)
    return build_support(db=SupportDB(os.environ.get("ACCORD_SUPPORT_DB")), use_llm=True,
                         models=ModelResolver(models={"*": model}), refund_threshold=1e9)
