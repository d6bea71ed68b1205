"""The support workflow whose refunds wait at a gate: a test graph for killing a worker mid-job.

``issue_refund`` writes ``entered-<pid>`` into ``$ACCORD_TEST_GATE`` and waits until the file
``open`` appears there, then refunds (``build`` is the graph reference ``gated.py:build``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from accord.graphs.support import SupportDB, build_support

GATE_WAIT = 120.0


class GatedSupportDB(SupportDB):
    def refund(self, invoice_id: str, amount: float, reason: str, key: str) -> dict[str, Any]:
        gate = Path(os.environ["ACCORD_TEST_GATE"])
        (gate / f"entered-{os.getpid()}").write_text(key)
        deadline = time.monotonic() + GATE_WAIT
        while not (gate / "open").exists():  # the test opens the gate: a condition, not a delay
            if time.monotonic() > deadline:
                raise TimeoutError("the gate never opened")
            time.sleep(0.02)
        return super().refund(invoice_id, amount, reason, key)


def build() -> Any:
    return build_support(db=GatedSupportDB())
