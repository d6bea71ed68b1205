"""The autouse guard: real model calls fail fast; loopback and opted-out tests are allowed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from langchain_openai import ChatOpenAI

from accord.testing import OpenAICompatServer, RealModelCallBlocked, block_real_network
from accord.testing.network import is_loopback


def test_chat_openai_to_api_openai_com_is_blocked_fast(block_real_model_calls: list[str]) -> None:
    model = ChatOpenAI(model="gpt-4o-mini", api_key="x")
    start = time.perf_counter()
    with pytest.raises(RealModelCallBlocked, match="api.openai.com"):
        model.invoke("hi")
    assert time.perf_counter() - start < 2  # no retries, no network wait
    assert block_real_model_calls == ["https://api.openai.com/v1/chat/completions"]


async def test_async_chat_openai_is_blocked() -> None:
    with pytest.raises(RealModelCallBlocked):
        await ChatOpenAI(model="gpt-4o-mini", api_key="x").ainvoke("hi")


@pytest.mark.parametrize("client_cls", [httpx.Client, httpx2.Client])
def test_sync_httpx_clients_are_blocked(client_cls: type) -> None:
    with client_cls() as client, pytest.raises(RealModelCallBlocked, match="example.com"):
        client.get("https://example.com/")


@pytest.mark.parametrize("client_cls", [httpx.AsyncClient, httpx2.AsyncClient])
async def test_async_httpx_clients_are_blocked(client_cls: type) -> None:
    async with client_cls() as client:
        with pytest.raises(RealModelCallBlocked, match="api.anthropic.com"):
            await client.post("https://api.anthropic.com/v1/messages", json={})


def test_loopback_is_allowed() -> None:
    with OpenAICompatServer() as server:
        for host in ("127.0.0.1", "localhost"):
            url = f"http://{host}:{server.port}/v1/models"
            assert httpx.get(url).json()["data"][0]["id"] == "scripted"
            assert httpx2.get(url).status_code == 200


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("localhost.", True),
        ("api.localhost", True),
        ("10.0.0.1", False),
        ("api.openai.com", False),
        ("localhost.evil.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_allow_hosts() -> None:
    assert is_loopback("internal.test", allow_hosts=["Internal.Test"])
    assert not is_loopback("other.test", allow_hosts=["internal.test"])


@pytest.mark.allow_model_requests
def test_guard_patches_and_restores_transports() -> None:
    originals = (httpx.HTTPTransport.handle_request, httpx2.AsyncHTTPTransport.handle_async_request)
    with block_real_network() as blocked:
        assert httpx.HTTPTransport.handle_request is not originals[0]
        with pytest.raises(RealModelCallBlocked):
            httpx.get("https://api.openai.com/v1/models")
        assert blocked == ["https://api.openai.com/v1/models"]
    assert (
        httpx.HTTPTransport.handle_request,
        httpx2.AsyncHTTPTransport.handle_async_request,
    ) == originals


def test_api_keys_removed_from_env() -> None:
    assert "OPENAI_API_KEY" not in os.environ
    assert "ANTHROPIC_API_KEY" not in os.environ


def test_plugin_in_a_fresh_pytest_run(tmp_path: Path) -> None:
    """Loaded with -p: keys are removed, calls blocked, and the marker opts out."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import os, httpx, pytest
            from accord.testing import RealModelCallBlocked

            def test_env_cleared():
                assert "OPENAI_API_KEY" not in os.environ

            def test_test_may_set_key(monkeypatch):
                monkeypatch.setenv("OPENAI_API_KEY", "mine")
                assert os.environ["OPENAI_API_KEY"] == "mine"

            def test_blocked():
                with pytest.raises(RealModelCallBlocked):
                    httpx.get("https://api.openai.com/v1/models")

            @pytest.mark.allow_model_requests
            def test_opt_out():
                assert os.environ["OPENAI_API_KEY"] == "sk-real"
                assert httpx.HTTPTransport.handle_request.__qualname__ == (
                    "HTTPTransport.handle_request")
            """
        )
    )
    env = {**os.environ, "OPENAI_API_KEY": "sk-real"}
    result = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "pytest",
            "-q",
            "-p",
            "accord.testing.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
