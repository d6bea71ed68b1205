"""langgraph.json and the checkpointer factory it names, without starting a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from accord.checkpoints import open_saver
from accord.graphs.catalog import CATALOG
from accord.server import accord_saver

REPO = Path(__file__).resolve().parents[2]


def test_langgraph_json_exports_every_catalog_graph_and_accords_checkpointer() -> None:
    config = json.loads((REPO / "langgraph.json").read_text())
    assert set(config["graphs"]) == set(CATALOG)
    for spec in config["graphs"].values():
        path, _, variable = spec.partition(":")
        assert (REPO / path).is_file() and variable == "make_graph"  # a factory: no import-time work
    path, _, name = config["checkpointer"]["path"].partition(":")
    import accord.server.checkpointer as module

    assert (REPO / path).resolve() == Path(module.__file__).resolve()
    assert getattr(module, name) is accord_saver


class Counter(TypedDict):
    count: int


def _counter_graph():
    builder = StateGraph(Counter)
    builder.add_node("inc", lambda s: {"count": s["count"] + 1})
    builder.add_edge(START, "inc")
    builder.add_edge("inc", END)
    return builder


async def test_factory_opens_the_configured_database_without_blocking_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dev server raises on blocking calls in the event loop (blockbuster); the factory
    # creates the SQLite folder and opens the file, so it must do that off the loop.
    url = f"sqlite:///{tmp_path}/new-folder/accord.db"
    monkeypatch.setenv("ACCORD_DB_URL", url)
    config = {"configurable": {"thread_id": "t-factory"}}
    blocker = BlockBuster()
    blocker.activate()
    try:
        async with accord_saver() as saver:
            graph = _counter_graph().compile(checkpointer=saver)
            assert await graph.ainvoke({"count": 1}, config) == {"count": 2}
    finally:
        blocker.deactivate()
    with open_saver(url) as saver:
        latest = saver.get_tuple(config)
    assert latest is not None and latest.checkpoint["channel_values"]["count"] == 2
