"""Fixtures for accord.checkpoints tests: every persistence test runs on memory, SQLite and
PostgreSQL (the last when `ACCORD_TEST_POSTGRES_URL` is set)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def counter_builder():
    """A factory of tiny graphs: one node adds 1 to `count`."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class Counter(TypedDict):
        count: int

    def make() -> StateGraph:
        builder = StateGraph(Counter)
        builder.add_node("inc", lambda s: {"count": s["count"] + 1})
        builder.add_edge(START, "inc")
        builder.add_edge("inc", END)
        return builder

    return make


@pytest.fixture
def thread_id() -> str:
    """A thread id no other test uses."""
    return f"t-{uuid.uuid4().hex}"
