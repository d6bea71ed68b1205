"""Block real HTTP calls at the network edge: `httpx` and `httpx2` transports.

The OpenAI SDK (`openai>=3`, used by langchain-openai) sends requests through
`httpx2`; the Anthropic SDK and many others through `httpx`. Both libraries send
every real request through `HTTPTransport.handle_request` /
`AsyncHTTPTransport.handle_async_request`, so that is where the guard sits.
In-process transports (`MockTransport`, `ASGITransport`) are not touched, and
loopback hosts stay reachable so a local OpenAI-compatible server can be tested.

```python
with block_real_network() as blocked:
    ChatOpenAI(api_key="x").invoke("hi")   # raises RealModelCallBlocked, no network wait
assert blocked == ["https://api.openai.com/v1/chat/completions"]
```
"""

from __future__ import annotations

import importlib
import ipaddress
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LOOPBACK_HOSTS", "RealModelCallBlocked", "block_real_network", "is_loopback"]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Host names always allowed through the guard."""

_HTTP_MODULES = ("httpx", "httpx2")


class RealModelCallBlocked(RuntimeError):
    """A test tried to reach a non-loopback host over HTTP (a real model call)."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"real network call blocked in tests: {url}. Use accord.testing.ScriptedChatModel "
            "or OpenAICompatServer (127.0.0.1), or mark the test "
            "@pytest.mark.allow_model_requests to opt out."
        )


def is_loopback(host: str, allow_hosts: Iterable[str] = ()) -> bool:
    """Whether `host` is a loopback address (or explicitly allowed)."""
    host = host.strip("[]").rstrip(".").lower()
    if host in LOOPBACK_HOSTS or host in {h.lower() for h in allow_hosts}:
        return True
    if host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guard_request(request: Any, allow_hosts: Iterable[str], blocked: list[str]) -> None:
    if not is_loopback(request.url.host, allow_hosts):
        url = str(request.url)
        blocked.append(url)
        raise RealModelCallBlocked(url)


def _patches(allow_hosts: tuple[str, ...], blocked: list[str]) -> list[tuple[type, str, Any]]:
    """(class, attribute, replacement) for every installed httpx-like library."""
    patches: list[tuple[type, str, Any]] = []
    for module_name in _HTTP_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - depends on the environment
            continue
        sync_cls, async_cls = module.HTTPTransport, module.AsyncHTTPTransport
        sync_orig, async_orig = sync_cls.handle_request, async_cls.handle_async_request

        def handle_request(self: Any, request: Any, _orig: Any = sync_orig) -> Any:
            _guard_request(request, allow_hosts, blocked)
            return _orig(self, request)

        async def handle_async_request(self: Any, request: Any, _orig: Any = async_orig) -> Any:
            _guard_request(request, allow_hosts, blocked)
            return await _orig(self, request)

        patches.append((sync_cls, "handle_request", handle_request))
        patches.append((async_cls, "handle_async_request", handle_async_request))
    return patches


@contextmanager
def block_real_network(allow_hosts: Iterable[str] = ()) -> Iterator[list[str]]:
    """Within the block, HTTP requests to non-loopback hosts raise `RealModelCallBlocked`.

    Yields the list of blocked URLs, appended to as requests are refused.
    """
    blocked: list[str] = []
    patches = _patches(tuple(allow_hosts), blocked)
    originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in patches]
    try:
        for cls, name, replacement in patches:
            setattr(cls, name, replacement)
        yield blocked
    finally:
        for cls, name, original in reversed(originals):
            setattr(cls, name, original)
