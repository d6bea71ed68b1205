"""Where a request's CPU goes: cProfile on the event loop's thread and in accord's saver threads.

accord's saver runs its blocking work on a small thread pool (``AccordSaver._offload``), which a
profiler enabled on the event loop's thread does not see. ``RequestProfiler`` enables one
``cProfile.Profile`` (timer: the thread's own CPU time, so waiting costs nothing) on the loop's
thread for the profiled requests and one in each saver thread around every offloaded call,
then adds the own time (``tottime``) of every function up by owner: an accord package, a
LangGraph part, another site package, a stdlib module, or the C module behind a built-in.
Tool calls run in asyncio's default executor, for both contenders alike, and are not profiled.
"""

from __future__ import annotations

import cProfile
import pstats
import re
import sysconfig
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

STDLIB = sysconfig.get_paths()["stdlib"]
SOURCE = str(Path(__file__).resolve().parents[1])
_BUILTIN = re.compile(r"of '([\w]+)|built-in method ([\w]+)\.")


def owner(path: str, name: str) -> str:
    """Who owns a profiled function (``path``, ``name`` as pstats keys them)."""
    if path == "~":
        found = _BUILTIN.search(name)
        module = (found.group(1) or found.group(2)) if found else "builtins"
        return f"C: {module.lstrip('_')}"
    if "site-packages/" in path:
        parts = path.split("site-packages/", 1)[1].split("/")
        package = parts[0].removesuffix(".py")
        if package == "langgraph" and len(parts) > 2:
            return f"langgraph.{parts[1]}"
        return package
    if path.startswith(STDLIB):
        return "stdlib: " + path[len(STDLIB):].strip("/").split("/", 1)[0].removesuffix(".py")
    if path.startswith(SOURCE):
        top = path[len(SOURCE):].strip("/").split("/", 1)[0].removesuffix(".py")
        return "benchmark harness (model, tools)" if top == "benchmarks" else f"accord.{top}"
    return "other"


class RequestProfiler:
    """Profiles the loop's thread (``loop()``) and, once ``watch``ed, a saver's threads."""

    def __init__(self) -> None:
        self.loop_profile = cProfile.Profile(time.thread_time)
        self.thread_profiles: list[cProfile.Profile] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def watch(self, saver: Any) -> None:
        """Profile every call ``saver`` offloads to its threads (accord's savers only)."""
        original = getattr(saver, "_offload", None)
        if original is None:
            return
        profiler = self

        async def offload(fn: Any, *args: Any, **kwargs: Any) -> Any:
            return await original(profiler._profiled, fn, *args, **kwargs)

        saver._offload = offload

    def _profiled(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        profile = getattr(self._local, "profile", None)
        if profile is None:
            profile = self._local.profile = cProfile.Profile(time.thread_time)
            with self._lock:
                self.thread_profiles.append(profile)
        profile.enable()
        try:
            return fn(*args, **kwargs)
        finally:
            profile.disable()

    def by_owner(self, requests: int) -> dict[str, dict[str, float]]:
        """``{"loop": {owner: ms per request}, "saver threads": {...}}``."""
        out: dict[str, dict[str, float]] = {}
        for where, profiles in (("loop", [self.loop_profile]),
                                ("saver threads", self.thread_profiles)):
            owned: Counter[str] = Counter()
            for profile in profiles:
                for (path, _line, name), row in pstats.Stats(profile).stats.items():
                    owned[owner(path, name)] += row[2]
            out[where] = {k: v / requests * 1000 for k, v in owned.items()}
        return out


def combined(profile: dict[str, dict[str, float]]) -> dict[str, float]:
    """Loop and saver threads added up, by owner."""
    total: Counter[str] = Counter()
    for part in profile.values():
        total.update(part)
    return dict(total)
