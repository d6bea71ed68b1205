"""Model tiers: an agent names a tier (``small``, ``large``) or a ``provider:model`` string."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel

from accord.resilience.transient import is_transient

__all__ = ["DEFAULT_TIERS", "REQUEST_TIMEOUT", "ModelResolver", "is_transient", "llm_available"]

DEFAULT_TIERS: dict[str, str] = {
    "small": "openai:gpt-4o-mini",
    "large": "openai:gpt-4o",
}

REQUEST_TIMEOUT = 60.0
"""Seconds one HTTP request to a model provider may take, unless configured
(``ModelResolver(request_timeout=...)`` or ``ACCORD_MODEL_TIMEOUT``)."""

ModelProvider = Callable[[str], BaseChatModel]


def llm_available() -> bool:
    """Whether a real model provider is configured (``OPENAI_API_KEY`` set)."""
    return bool(os.environ.get("OPENAI_API_KEY"))


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, or None outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class PerLoop:
    """Values built once per event loop (a loop's HTTP connections belong to it alone)."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._outside: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        loop = running_loop()
        with self._lock:
            cache = self._outside if loop is None else self._by_loop.setdefault(loop, {})
            if key not in cache:
                cache[key] = build()
            return cache[key]


class ModelResolver:
    """Turns a model reference into a chat model, lazily and once per reference and event loop.

    Tiers come from ``tiers`` and may be overridden by ``ACCORD_MODEL_<TIER>``. A mapping of
    ready-made models (for example ``accord.testing.ScriptedChatModel``) short-circuits
    everything, which is how tests and benchmarks inject models.

    An OpenAI model gets an async HTTP client of its own per event loop: langchain-openai shares
    one per process, and a connection opened on one loop cannot serve another (accord's sync
    entry points run on a loop of their own, beside the caller's).

    A built model has a request timeout and no client-side retries: accord retries in one
    place (``ProviderRetryMiddleware`` for agents, the router's own attempts), so the attempts
    are counted and bounded where the spec says.
    """

    def __init__(
        self,
        tiers: Mapping[str, str] | None = None,
        models: Mapping[str, BaseChatModel] | None = None,
        request_timeout: float | None = None,
    ) -> None:
        self.tiers = {**DEFAULT_TIERS, **(tiers or {})}
        self.models = dict(models or {})
        self.request_timeout = request_timeout if request_timeout is not None else float(
            os.environ.get("ACCORD_MODEL_TIMEOUT", REQUEST_TIMEOUT))
        """Seconds one provider request may take."""
        self._built = PerLoop()

    def resolve_name(self, ref: str) -> str:
        if ref in self.tiers:
            return os.environ.get(f"ACCORD_MODEL_{ref.upper()}", self.tiers[ref])
        return ref

    def call_bound(self, ref: str) -> float | None:
        """Seconds accord bounds one call of ``ref`` by when an agent's spec says nothing: none
        for a model it builds (its request timeout is the bound), ``request_timeout`` for an
        injected one."""
        injected = ref in self.models or "*" in self.models
        return self.request_timeout if injected else None

    def __call__(self, ref: str) -> BaseChatModel:
        if ref in self.models:
            return self.models[ref]
        if "*" in self.models:
            return self.models["*"]
        return self._built.get(ref, lambda: self._build(self.resolve_name(ref)))

    def _build(self, name: str) -> BaseChatModel:
        from langchain.chat_models import init_chat_model

        extra: dict[str, Any] = {"timeout": self.request_timeout, "max_retries": 0}
        if name.startswith("openai:") and running_loop() is not None:
            import openai

            extra["http_async_client"] = openai.DefaultAsyncHttpxClient()
        # ChatOpenAI reads OPENAI_API_KEY and OPENAI_BASE_URL from the environment, so any
        # OpenAI-compatible server works.
        return init_chat_model(name, temperature=0, **extra)
