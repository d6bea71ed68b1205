"""open_saver / open_async_saver: a graph runs and is read back on every backend."""

from __future__ import annotations

import time

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver

from accord.checkpoints import (
    CheckpointError,
    DatabaseUnreachable,
    UnknownScheme,
    open_async_saver,
    open_saver,
    resolve_url,
)


def _cfg(thread_id: str) -> dict:
    return {"configurable": {"thread_id": thread_id}}


def test_counter_graph_round_trips(db_url, counter_builder, thread_id):
    with open_saver(db_url) as saver:
        assert isinstance(saver, BaseCheckpointSaver)
        graph = counter_builder().compile(checkpointer=saver)
        assert graph.invoke({"count": 0}, _cfg(thread_id)) == {"count": 1}
        assert graph.invoke({"count": 41}, _cfg(thread_id)) == {"count": 42}
        saved = saver.get_tuple(_cfg(thread_id))
        assert saved is not None
        assert saved.checkpoint["channel_values"]["count"] == 42
        assert len(list(saver.list(_cfg(thread_id)))) >= 4
    if db_url.startswith("memory"):
        return
    with open_saver(db_url) as saver:  # a second opening reads what the first wrote
        graph = counter_builder().compile(checkpointer=saver)
        assert graph.get_state(_cfg(thread_id)).values == {"count": 42}


async def test_async_counter_graph_round_trips(db_url, counter_builder, thread_id):
    async with open_async_saver(db_url) as saver:
        graph = counter_builder().compile(checkpointer=saver)
        assert await graph.ainvoke({"count": 1}, _cfg(thread_id)) == {"count": 2}
        state = await graph.aget_state(_cfg(thread_id))
        assert state.values == {"count": 2}
        saved = await saver.aget_tuple(_cfg(thread_id))
        assert saved is not None and saved.checkpoint["channel_values"]["count"] == 2
    if db_url.startswith("memory"):
        return
    with open_saver(db_url) as saver:  # the sync saver reads what the async one wrote
        assert saver.get_tuple(_cfg(thread_id)).checkpoint["channel_values"]["count"] == 2


@pytest.mark.parametrize("url", ["mysql://localhost/x", "redis://x", "no-scheme", "sqlite://x"])
def test_unknown_scheme_is_typed(url):
    with pytest.raises(UnknownScheme) as err, open_saver(url):
        pass
    assert isinstance(err.value, CheckpointError)


async def test_unknown_scheme_async():
    with pytest.raises(UnknownScheme):
        async with open_async_saver("mongodb://x"):
            pass


def test_unreachable_postgres_is_typed_and_quick():
    start = time.monotonic()
    with (
        pytest.raises(DatabaseUnreachable) as err,
        open_saver("postgresql://someone:s3cret@127.0.0.1:1/x", timeout=2),
    ):
        pass
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "127.0.0.1:1/x" in message and "s3cret" not in message
    assert "\n" not in message
    assert isinstance(err.value, CheckpointError)


async def test_unreachable_postgres_async():
    with pytest.raises(DatabaseUnreachable):
        async with open_async_saver("postgres://u:pw@127.0.0.1:1/x", timeout=2):
            pass


def test_resolve_url_explicit_env_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_DB_URL", raising=False)
    assert resolve_url("memory://") == "memory://"
    assert resolve_url(None) == "sqlite:///.accord/accord.db"
    assert (tmp_path / ".accord").is_dir()
    monkeypatch.setenv("ACCORD_DB_URL", "sqlite:///data/x.db")
    assert resolve_url(None) == "sqlite:///data/x.db"
    assert (tmp_path / "data").is_dir()


def test_default_sqlite_saver_under_accord(tmp_path, monkeypatch, counter_builder, thread_id):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_DB_URL", raising=False)
    with open_saver() as saver:
        counter_builder().compile(checkpointer=saver).invoke({"count": 0}, _cfg(thread_id))
    assert (tmp_path / ".accord" / "accord.db").is_file()


def test_the_pool_size_comes_from_the_environment(monkeypatch) -> None:
    from accord.checkpoints.errors import UnsupportedOption
    from accord.checkpoints.savers import pool_size_default

    monkeypatch.delenv("ACCORD_DB_POOL_SIZE", raising=False)
    assert pool_size_default() == 20
    monkeypatch.setenv("ACCORD_DB_POOL_SIZE", "6")
    assert pool_size_default() == 6
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv("ACCORD_DB_POOL_SIZE", bad)
        with pytest.raises(UnsupportedOption, match="ACCORD_DB_POOL_SIZE must be a positive"):
            pool_size_default()
