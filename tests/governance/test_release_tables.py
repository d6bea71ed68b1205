"""The release tables: created once however many processes start together, and a row edited
by hand into something unreadable is one clear error."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from accord.agents.releases import ReleaseTableCorrupt, releases_for
from accord.checkpoints import open_saver


def test_savers_starting_together_create_the_tables_once(durable_url):
    savers = [open_saver(durable_url) for _ in range(6)]
    opened = [s.__enter__() for s in savers]
    barrier = threading.Barrier(len(opened))

    def first_read(saver):
        barrier.wait()
        return releases_for(saver).all()

    try:
        with ThreadPoolExecutor(len(opened)) as pool:
            assert list(pool.map(first_read, opened)) == [{}] * len(opened)
    finally:
        for manager in savers:
            manager.__exit__(None, None, None)


def test_an_unreadable_row_is_one_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path}/a.db"
    with open_saver(url) as saver:
        store = releases_for(saver)
        store.change("helper", "ana", lambda r: r.model_copy(update={"weight": 5.0}))
        saver._transaction(None, lambda cur: cur.execute(
            "UPDATE accord_agent_releases SET withdrawn = 'not json'"))
        with pytest.raises(ReleaseTableCorrupt, match="accord_agent_releases row 'helper'"):
            store.all()


def test_a_first_transaction_cut_short_leaves_the_tables_to_the_next(durable_url):
    """The tables are created in the first transaction that needs them; when it rolls back (a
    failed edit here, a session ended under it in production) the next one creates them."""
    from accord.resilience.breaker_sql import SqlBreakers

    def fail(_value):
        raise RuntimeError("cut short")

    with open_saver(durable_url) as saver:
        releases, breakers = releases_for(saver), SqlBreakers(saver)
        for first in (lambda: releases.change("helper", "ana", fail),
                      lambda: breakers.change("model:x", fail)):
            with pytest.raises(RuntimeError, match="cut short"):
                first()
        assert releases.all() == {}
        assert breakers.all() == []
