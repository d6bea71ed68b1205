"""accord.checkpoints: accord's saver opened from a URL, the thread index, the audit log, the
tool ledger, retention, history, replay and fork.

```python
from accord.checkpoints import open_saver

with open_saver("sqlite:///.accord/accord.db") as saver:
    graph = workflow.compile(checkpointer=saver)
    graph.invoke(inputs, {"configurable": {"thread_id": "t-1"}})
    saver.threads.list(status="interrupted")     # pending approvals, from an index
    saver.audit_log("t-1")                       # what happened, in order
```
"""

from accord.checkpoints.accord_saver import AccordSaver, ClaimRefused, RunEnd
from accord.checkpoints.errors import (
    CheckpointError,
    CheckpointNotFound,
    CorruptCheckpoint,
    DatabaseUnreachable,
    ThreadBusy,
    ThreadNotFound,
    UnknownScheme,
    UnsupportedOption,
    WriterFenced,
)
from accord.checkpoints.prune import PruneReport, StorageSize, expire_threads, prune, prune_saver
from accord.checkpoints.runs import RunHandle, RunKind, RunSpec
from accord.checkpoints.savers import open_async_saver, open_saver
from accord.checkpoints.store import open_store
from accord.checkpoints.threads import ThreadIndex, ThreadRecord, ThreadStatus, open_thread_index
from accord.checkpoints.urls import resolve_url

__all__ = [
    "AccordSaver",
    "CheckpointError",
    "CheckpointNotFound",
    "ClaimRefused",
    "CorruptCheckpoint",
    "DatabaseUnreachable",
    "PruneReport",
    "RunEnd",
    "RunHandle",
    "RunKind",
    "RunSpec",
    "StorageSize",
    "ThreadBusy",
    "ThreadIndex",
    "ThreadNotFound",
    "ThreadRecord",
    "ThreadStatus",
    "UnknownScheme",
    "UnsupportedOption",
    "WriterFenced",
    "expire_threads",
    "open_async_saver",
    "open_saver",
    "open_store",
    "open_thread_index",
    "prune",
    "prune_saver",
    "resolve_url",
]
