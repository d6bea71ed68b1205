"""The public langgraph-checkpoint-conformance suite against every saver accord opens.

The suite is async-only; sync savers run through `_async_over_sync`, which exposes exactly the
sync methods the saver's class implements as their async twins (in a worker thread).
"""

from __future__ import annotations

import asyncio

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability

from accord.checkpoints import open_async_saver, open_saver

_SYNC_TO_ASYNC = {
    "put": "aput",
    "put_writes": "aput_writes",
    "get_tuple": "aget_tuple",
    "delete_thread": "adelete_thread",
    "delete_for_runs": "adelete_for_runs",
    "copy_thread": "acopy_thread",
    "prune": "aprune",
}


def _async_over_sync(saver: BaseCheckpointSaver) -> BaseCheckpointSaver:
    """Wrap a sync saver so the async suite can drive it."""
    namespace: dict = {}
    for sync_name, async_name in _SYNC_TO_ASYNC.items():
        if getattr(type(saver), sync_name) is getattr(BaseCheckpointSaver, sync_name):
            continue

        def make(name: str):
            async def method(self, *args, **kwargs):
                return await asyncio.to_thread(getattr(self.inner, name), *args, **kwargs)

            return method

        namespace[async_name] = make(sync_name)

    async def alist(self, *args, **kwargs):
        for item in await asyncio.to_thread(lambda: list(self.inner.list(*args, **kwargs))):
            yield item

    namespace["alist"] = alist
    cls = type(f"AsyncOver{type(saver).__name__}", (BaseCheckpointSaver,), namespace)
    wrapper = cls(serde=saver.serde)
    wrapper.inner = saver
    wrapper.get_next_version = saver.get_next_version
    return wrapper


_REQUIRED = {c.value for c in Capability} - {"delete_for_runs", "copy_thread"}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_conformance(db_url, mode):
    if mode == "sync":

        @checkpointer_test(name=f"accord sync {db_url.split(':')[0]}")
        async def factory():
            with open_saver(db_url) as saver:
                yield _async_over_sync(saver)

    else:

        @checkpointer_test(name=f"accord async {db_url.split(':')[0]}")
        async def factory():
            async with open_async_saver(db_url) as saver:
                yield saver

    report = await validate(factory)
    failures = {name: result.failures for name, result in report.results.items() if result.failures}
    assert not failures, failures
    passed = {name for name, result in report.results.items() if result.passed}
    assert _REQUIRED <= passed, f"not run: {_REQUIRED - passed}"
