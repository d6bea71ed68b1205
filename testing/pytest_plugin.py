"""pytest plugin: no real model calls in tests.

Enable it from the root `tests/conftest.py`::

    pytest_plugins = ["accord.testing.pytest_plugin"]

or on the command line with `-p accord.testing.pytest_plugin`.

The autouse fixture `block_real_model_calls`:

- makes any `httpx` / `httpx2` request to a non-loopback host raise
  `RealModelCallBlocked` (loopback stays open for `OpenAICompatServer`);
- removes provider API keys and LangSmith tracing variables from the
  environment, so nothing picks up a developer's real credentials (a test
  may set them again with `monkeypatch.setenv`).

Mark a test `@pytest.mark.allow_model_requests` to opt out (live tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accord.testing.network import RealModelCallBlocked, block_real_network

__all__ = ["API_KEY_ENV_VARS", "RealModelCallBlocked", "block_real_model_calls"]

API_KEY_ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_ORG_ID",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "COHERE_API_KEY",
    "TOGETHER_API_KEY",
    "FIREWORKS_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "OPENROUTER_API_KEY",
    "HUGGINGFACEHUB_API_TOKEN",
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGSMITH_TRACING",
    "LANGCHAIN_TRACING_V2",
    "LANGCHAIN_TRACING",
)
"""Environment variables removed for every test (credentials, endpoints, tracing)."""

ALLOW_MARKER = "allow_model_requests"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{ALLOW_MARKER}: let this test make real (non-loopback) model calls"
    )


@pytest.fixture(autouse=True)
def block_real_model_calls(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Fail any real model call; yields the list of blocked URLs."""
    if request.node.get_closest_marker(ALLOW_MARKER) is not None:
        yield []
        return
    for name in API_KEY_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    with block_real_network() as blocked:
        yield blocked
