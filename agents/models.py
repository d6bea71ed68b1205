"""Model tiers: an agent names a tier (``small``, ``large``) or a ``provider:model`` string."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

from langchain_core.language_models import BaseChatModel

DEFAULT_TIERS: dict[str, str] = {
    "small": "openai:gpt-4o-mini",
    "large": "openai:gpt-4o",
}

ModelProvider = Callable[[str], BaseChatModel]


def llm_available() -> bool:
    """Whether a real model provider is configured (``OPENAI_API_KEY`` set)."""
    return bool(os.environ.get("OPENAI_API_KEY"))


class ModelResolver:
    """Turns a model reference into a chat model, lazily and once per reference.

    Tiers come from ``tiers`` and may be overridden by ``ACCORD_MODEL_<TIER>``. A mapping of
    ready-made models (for example ``accord.testing.ScriptedChatModel``) short-circuits
    everything, which is how tests and benchmarks inject models.
    """

    def __init__(
        self,
        tiers: Mapping[str, str] | None = None,
        models: Mapping[str, BaseChatModel] | None = None,
    ) -> None:
        self.tiers = {**DEFAULT_TIERS, **(tiers or {})}
        self.models = dict(models or {})
        self._cache: dict[str, BaseChatModel] = {}
        self._lock = threading.Lock()

    def resolve_name(self, ref: str) -> str:
        if ref in self.tiers:
            return os.environ.get(f"ACCORD_MODEL_{ref.upper()}", self.tiers[ref])
        return ref

    def __call__(self, ref: str) -> BaseChatModel:
        if ref in self.models:
            return self.models[ref]
        if "*" in self.models:
            return self.models["*"]
        with self._lock:
            if ref not in self._cache:
                from langchain.chat_models import init_chat_model

                # ChatOpenAI reads OPENAI_API_KEY and OPENAI_BASE_URL from the environment,
                # so any OpenAI-compatible server works.
                self._cache[ref] = init_chat_model(self.resolve_name(ref), temperature=0)
            return self._cache[ref]


TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt."""


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed: a timeout, a dropped connection, 429 or 5xx.

    Validation errors and other 4xx answers are not: the same request fails the same way.
    """
    if isinstance(error, TimeoutError | ConnectionError):
        return True
    status = getattr(error, "status_code", None) or getattr(
        getattr(error, "response", None), "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_STATUS or status >= 500
    name = type(error).__name__
    return name in {"APIConnectionError", "APITimeoutError", "ReadTimeout", "ConnectTimeout",
                    "RemoteProtocolError", "ReadError"}
