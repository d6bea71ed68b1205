"""accord.checkpoints: savers opened from a URL, thread locks, the thread index, retention, store.

```python
from accord.checkpoints import open_saver, thread_lock

with open_saver() as saver, thread_lock(None, "t-1"):
    graph = builder.compile(checkpointer=saver)
    graph.invoke(inputs, {"configurable": {"thread_id": "t-1"}})
```
"""

from accord.checkpoints.errors import (
    CheckpointError,
    DatabaseUnreachable,
    ThreadBusy,
    UnknownScheme,
    UnsupportedOption,
)
from accord.checkpoints.locks import athread_lock, thread_lock
from accord.checkpoints.prune import PruneReport, StorageSize, expire_threads, prune, prune_saver
from accord.checkpoints.savers import open_async_saver, open_saver
from accord.checkpoints.store import open_store
from accord.checkpoints.threads import ThreadIndex, ThreadRecord, ThreadStatus, open_thread_index
from accord.checkpoints.urls import resolve_url

__all__ = [
    "CheckpointError",
    "DatabaseUnreachable",
    "PruneReport",
    "StorageSize",
    "ThreadBusy",
    "ThreadIndex",
    "ThreadRecord",
    "ThreadStatus",
    "UnknownScheme",
    "UnsupportedOption",
    "athread_lock",
    "expire_threads",
    "open_async_saver",
    "open_saver",
    "open_store",
    "open_thread_index",
    "prune",
    "prune_saver",
    "resolve_url",
    "thread_lock",
]
