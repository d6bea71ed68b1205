"""accord.engine: what every run of an accord graph passes through, whatever started it.

- ``AccordGraph``: the compiled graph (``Workflow.compile()`` returns one); its ``astream`` is
  the one engine, its ``stream``/``invoke`` drive the same code from synchronous callers;
- ``inputs``: the request's shape, checked at the entry;
- ``errors``: why a run was refused before it started, or failed without raising;
- ``portal``: the event loop synchronous callers run on.
"""

from accord.engine.errors import (
    DecisionRecorded,
    InvalidInput,
    NotWaiting,
    RunFailed,
    ThreadIdMissing,
    ThreadMovedOn,
    ThreadUnfinished,
    ThreadWaiting,
)
from accord.engine.graph import AccordGraph, EngineSettings

__all__ = [
    "AccordGraph",
    "DecisionRecorded",
    "EngineSettings",
    "InvalidInput",
    "NotWaiting",
    "RunFailed",
    "ThreadIdMissing",
    "ThreadMovedOn",
    "ThreadUnfinished",
    "ThreadWaiting",
]
