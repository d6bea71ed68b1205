"""open_store: long-term memory shared across threads, with TTL expiry."""

from __future__ import annotations

import time
import uuid

import pytest
from langgraph.store.base import BaseStore

from accord.checkpoints import UnsupportedOption, open_store


def test_store_put_get_search(db_url):
    ns = ("users", uuid.uuid4().hex)
    with open_store(db_url) as store:
        assert isinstance(store, BaseStore)
        store.put(ns, "prefs", {"tone": "formal", "lang": "fr"})
        store.put(ns, "profile", {"name": "Ada", "lang": "en"})
        assert store.get(ns, "prefs").value == {"tone": "formal", "lang": "fr"}
        assert store.get(ns, "missing") is None
        assert {i.key for i in store.search(ns)} == {"prefs", "profile"}
        assert [i.key for i in store.search(ns, filter={"lang": "en"})] == ["profile"]
        assert [i.key for i in store.search(ns[:1], filter={"name": "Ada"})] == ["profile"]
        store.delete(ns, "prefs")
        assert store.get(ns, "prefs") is None


def test_store_is_shared_across_openings(durable_url):
    ns = ("shared", uuid.uuid4().hex)
    with open_store(durable_url) as store:
        store.put(ns, "k", {"v": 1})
    with open_store(durable_url) as store:
        assert store.get(ns, "k").value == {"v": 1}


def test_store_ttl_expires_items(durable_url):
    ns = ("ttl", uuid.uuid4().hex)
    with open_store(durable_url, ttl_minutes=60) as store:
        store.put(ns, "short", {"v": 1}, ttl=1 / 60)  # one second
        store.put(ns, "default", {"v": 2})  # the store's default: an hour
        assert store.get(ns, "short") is not None
        time.sleep(2.2)
        assert store.sweep_ttl() >= 1
        assert store.get(ns, "short") is None
        assert store.get(ns, "default").value == {"v": 2}
        assert [i.key for i in store.search(ns)] == ["default"]


def test_memory_store_refuses_ttl():
    with pytest.raises(UnsupportedOption), open_store("memory://", ttl_minutes=5):
        pass
