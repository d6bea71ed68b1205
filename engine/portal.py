"""The sync driver: ``invoke``/``stream`` run the async engine on one background event loop.

accord's engine is written once, async. A synchronous caller (a script, a notebook cell, a
sync tool) gets the same code: its run is an async generator driven on a per-process loop
thread, its chunks handed back one by one. The caller's context variables travel with it
(tracing, callbacks), so LangGraph's ``get_config()``, ``interrupt()`` and LangSmith work as
in an async run. Timeouts and retries then behave the same on both paths, because there is
only one path.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _DONE = "item", "error", "done"


class Portal:
    """A daemon thread running an event loop, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._thread or not self._thread.is_alive():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    ready.set()
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name="accord-portal", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def on_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def iterate(self, make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """Iterate an async iterator (made on the loop) from synchronous code."""
        if self.on_loop_thread():  # a sync run inside a run on the portal: a loop of its own
            yield from _iterate_on_new_loop(make)
            return
        loop = self.loop()
        context = contextvars.copy_context()
        results: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        task_box: list[asyncio.Task] = []
        started = threading.Event()

        async def pump() -> None:
            try:
                async for item in make():
                    results.put((_ITEM, item))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                results.put((_ERROR, exc))
            else:
                results.put((_DONE, None))

        def start() -> None:
            task_box.append(loop.create_task(pump(), context=context))
            started.set()

        loop.call_soon_threadsafe(start)
        finished = False
        try:
            while True:
                try:
                    kind, value = results.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == _ITEM:
                    yield value
                elif kind == _ERROR:
                    finished = True
                    raise value
                else:
                    finished = True
                    return
        finally:
            if not finished:  # the caller stopped early: cancel the run and let it clean up
                started.wait()
                loop.call_soon_threadsafe(task_box[0].cancel)
                while True:
                    kind, _ = results.get()
                    if kind != _ITEM:
                        break

    def run(self, coro_factory: Callable[[], Any]) -> Any:
        """Run a coroutine to completion from synchronous code."""
        for value in self.iterate(lambda: _once(coro_factory)):
            return value
        return None


async def _once(coro_factory: Callable[[], Any]) -> AsyncIterator[Any]:
    yield await coro_factory()


def _iterate_on_new_loop(make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    items: list[T] = []

    async def collect() -> None:
        async for item in make():
            items.append(item)

    context = contextvars.copy_context()
    error: list[BaseException] = []

    def target() -> None:
        try:
            context.run(asyncio.run, collect())
        except BaseException as exc:  # noqa: BLE001
            error.append(exc)

    thread = threading.Thread(target=target, name="accord-portal-nested")
    thread.start()
    thread.join()
    yield from items
    if error:
        raise error[0]


PORTAL = Portal()
"""The process's portal."""

__all__ = ["PORTAL", "Portal"]
