"""The thread index round-trips on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accord.checkpoints import ThreadRecord, ThreadStatus, open_thread_index


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **kw) -> None:
        self.now += timedelta(**kw)


def test_thread_index_round_trips(db_url, thread_id):
    clock = FakeClock()
    with open_thread_index(db_url, clock=clock) as index:
        assert index.get(thread_id) is None
        first = index.upsert(thread_id, graph="support", status="running")
        assert first == ThreadRecord(
            thread_id=thread_id,
            graph="support",
            status=ThreadStatus.RUNNING,
            created_at=clock.now,
            updated_at=clock.now,
        )
        assert (first.epoch, first.head, first.error) == (0, None, None)
        clock.tick(minutes=5)
        pending = {"kind": "approval", "payload": {"amount": 12.5, "items": ["a", "b"]}}
        second = index.upsert(thread_id, status=ThreadStatus.INTERRUPTED, pending=pending)
        assert second.graph == "support"  # graph=None keeps the recorded graph
        assert second.created_at == first.created_at
        assert second.updated_at == clock.now
        assert index.get(thread_id) == second
        assert index.get(thread_id).pending == pending

        clock.tick(minutes=1)
        index.upsert(thread_id, status="done")
        assert index.get(thread_id).pending is None

        others = [f"{thread_id}-{i}" for i in range(3)]
        for i, other in enumerate(others):
            clock.tick(minutes=1)
            index.upsert(other, graph="g", status="interrupted" if i else "failed")
        assert [r.thread_id for r in index.list(status="interrupted")] == [others[2], others[1]]
        assert [r.thread_id for r in index.list(limit=2)] == [others[2], others[1]]
        assert {r.thread_id for r in index.list()} == {thread_id, *others}
        assert [r.thread_id for r in index.list("done")] == [thread_id]
        old = index.list(updated_before=first.created_at + timedelta(minutes=7))
        assert [r.thread_id for r in old] == [thread_id]

        assert index.delete([thread_id, others[0], "missing"]) == 2
        assert index.get(thread_id) is None
        assert {r.thread_id for r in index.list()} == set(others[1:])


def test_thread_index_persists(durable_url, thread_id):
    with open_thread_index(durable_url) as index:
        index.upsert(thread_id, graph="g", status="interrupted", pending=[{"q": "ok?"}])
    with open_thread_index(durable_url) as index:
        record = index.get(thread_id)
    assert record.status is ThreadStatus.INTERRUPTED and record.pending == [{"q": "ok?"}]
    assert record.updated_at.tzinfo is not None


def test_thread_locks_are_per_schema_on_postgres(postgres_url, pg_schema_url, request):
    """Advisory locks are database-wide; accord's are scoped by the schema its tables are in.
    One thread id in two schemas of one database: both proceed. In one schema: one writer."""
    import pytest

    from accord.checkpoints import open_saver
    from accord.checkpoints.errors import ThreadBusy
    from accord.checkpoints.runs import RunKind, RunSpec

    other = request.getfixturevalue("pg_schema_url_2")
    spec = lambda: RunSpec("t-same", RunKind.NEW, graph="g", input={"messages": []})  # noqa: E731
    with open_saver(pg_schema_url) as a, open_saver(other) as b, open_saver(pg_schema_url) as c:
        first = a.begin_run(spec())
        second = b.begin_run(spec())  # another schema: not busy
        assert (first.epoch, second.epoch) == (1, 1)
        with pytest.raises(ThreadBusy):
            c.begin_run(RunSpec("t-same", RunKind.CONTINUE, graph="g"))
        a._release(first)
        b._release(second)
