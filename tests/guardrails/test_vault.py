"""The PII vault on every backend: values kept outside the checkpoint, one placeholder per value
for the whole thread, resolved for a tool, deleted with the thread; on SQLite, PostgreSQL (a
fresh schema) and memory://."""

from __future__ import annotations

import uuid

import pytest

from accord.checkpoints import open_saver
from accord.graphs.support import build_support
from accord.guardrails.vault import vault_entries


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accord.db"
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("pg_schema_url")


def ask(graph, thread: str, text: str) -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": text}]},
                        {"configurable": {"thread_id": thread}})


def test_a_thread_keeps_one_placeholder_per_value_across_requests(url, support_db):
    with open_saver(url) as saver:
        graph = build_support(db=support_db, use_llm=False).compile(checkpointer=saver)
        thread = f"t-{uuid.uuid4().hex}"
        first = ask(graph, thread, "I forgot my password, alice@example.com")
        assert first["messages"][-1].content == "I sent a password-reset link to <EMAIL_1>."
        second = ask(graph, thread, "bob@example.com and alice@example.com: what plan am I on?")
        assert second["messages"][-2].content == "<EMAIL_2> and <EMAIL_1>: what plan am I on?"
        assert vault_entries(saver, thread) == {"<EMAIL_1>": "alice@example.com",
                                                "<EMAIL_2>": "bob@example.com"}
        other = f"t-{uuid.uuid4().hex}"
        ask(graph, other, "I forgot my password, bob@example.com")
        assert vault_entries(saver, other) == {"<EMAIL_1>": "bob@example.com"}
        assert [r["email"] for r in support_db.query("SELECT email FROM password_resets")] == [
            "alice@example.com", "bob@example.com"]
        saver.forget([thread])  # the thread's retention deletes its vault too
        assert vault_entries(saver, thread) == {} and vault_entries(saver, other)
