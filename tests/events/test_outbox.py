"""accord's events: outbox rows written with the step that produced them, relayed at least once
to Redis Streams and NATS JetStream, deduplicated by event id; a killed relay loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import redis
from langgraph.types import Command

from accord.checkpoints import open_saver
from accord.engine.errors import InvalidInput
from accord.graphs.support import build_support
from accord.workers.brokers import NatsJetStream, RedisStreams
from accord.workers.events import Event, event_schema, schema_path
from accord.workers.relay import OutboxTable, Relay

ACCORD = str(Path(sys.executable).with_name("accord"))
REFUND = "I was charged twice for INV-1004. Please refund $150."
QUESTION = "What is your refund policy? (case {n})"


@pytest.fixture(autouse=True)
def _support_db(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCORD_SUPPORT_DB", str(tmp_path / "support.db"))


def outbox(saver, thread_id: str | None = None) -> list[dict]:
    def body(cur):
        cur.execute(saver.dialect.sql("SELECT body FROM accord_outbox ORDER BY seq"))
        return [saver.dialect.json_out(r["body"] if isinstance(r, dict) else r[0])
                for r in cur.fetchall()]

    rows = saver._read(body)
    return [r for r in rows if thread_id is None or r["thread_id"] == thread_id]


def ask(graph, thread_id: str, text: str) -> dict:
    return graph.invoke({"messages": [{"role": "user", "content": text}]},
                        {"configurable": {"thread_id": thread_id}})


def test_a_runs_events_commit_with_its_steps_and_fit_the_schema(durable_url):
    with open_saver(durable_url) as saver:
        graph = build_support().compile(checkpointer=saver)
        ask(graph, "o-1", REFUND)
        waiting = outbox(saver, "o-1")
        assert [e["type"] for e in waiting] == ["task.started", "approval.requested"]
        requested = waiting[-1]
        assert requested["data"]["action_requests"][0]["name"] == "issue_refund"
        assert requested["graph"] == "support" and requested["run_id"]

        graph.invoke(Command(resume={"decisions": [{"type": "approve"}], "by": "ana"}),
                     {"configurable": {"thread_id": "o-1"}})
        events = outbox(saver, "o-1")
        assert [e["type"] for e in events] == ["task.started", "approval.requested",
                                                 "approval.decided", "task.completed",
                                                 "thread.completed"]
        decided = events[2]
        assert (decided["data"]["decision"], decided["data"]["by"]) == ("approve", "ana")
        assert len({e["event_id"] for e in events}) == len(events)
        schema = json.loads(schema_path().read_text())
        for event in events:
            jsonschema.validate(event, schema)
            Event.model_validate(event)

        with pytest.raises(InvalidInput):  # refused before anything is saved: no event
            graph.invoke({"messages": 42}, {"configurable": {"thread_id": "o-2"}})
        assert outbox(saver, "o-2") == []


def test_the_published_schema_is_the_models():
    assert json.loads(schema_path().read_text()) == event_schema()


def test_a_step_saved_again_adds_no_event(durable_url):
    with open_saver(durable_url) as saver:
        graph = build_support().compile(checkpointer=saver)
        ask(graph, "d-1", REFUND)
        before = outbox(saver, "d-1")
        saver._transaction(None, lambda cur: saver.dialect.insert_outbox(cur, before))
        assert outbox(saver, "d-1") == before


def _redis_events(stream: str) -> list[dict]:
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        return [json.loads(fields[b"event"]) for _, fields in client.xrange(stream)]
    finally:
        client.close()


def test_the_relay_publishes_to_redis_streams_and_nats_jetstream_once(durable_url):
    tag = uuid.uuid4().hex[:8]
    with open_saver(durable_url) as saver:
        graph = build_support().compile(checkpointer=saver)
        ask(graph, f"r-{tag}", REFUND)
        ask(graph, f"q-{tag}", QUESTION.format(n=0))
        expected = [e["event_id"] for e in outbox(saver)]

        async def relay_to(broker) -> int:
            table = OutboxTable(durable_url)
            try:
                runner = Relay(table, broker, batch=3)
                return await runner.run(asyncio.Event(), until_empty=True)
            finally:
                await broker.close()
                table.close()

        stream = f"accord-test-{tag}"
        assert asyncio.run(relay_to(RedisStreams(f"redis://127.0.0.1:6379/0?stream={stream}"))) \
            == len(expected)
        assert [e["event_id"] for e in _redis_events(stream)] == expected  # in order
        assert asyncio.run(relay_to(RedisStreams(f"redis://127.0.0.1:6379/0?stream={stream}"))) \
            == 0  # all marked published

        # NATS: every event published twice (as a relay killed before marking would)
        # is stored once, JetStream deduplicating on the event id
        saver._transaction(None, lambda cur: cur.execute(
            "UPDATE accord_outbox SET published_at = NULL"))
        nats_url = f"nats://127.0.0.1:4222?stream=T{tag.upper()}&subject=accord.t{tag}"
        assert asyncio.run(relay_to(NatsJetStream(nats_url))) == len(expected)
        saver._transaction(None, lambda cur: cur.execute(
            "UPDATE accord_outbox SET published_at = NULL"))
        assert asyncio.run(relay_to(NatsJetStream(nats_url))) == len(expected)

    async def stored() -> tuple[int, list[str]]:
        import nats

        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            js = nc.jetstream()
            info = await js.stream_info(f"T{tag.upper()}")
            sub = await js.pull_subscribe(f"accord.t{tag}.>", durable=None)
            msgs = await sub.fetch(info.state.messages, timeout=10)
            ids = [json.loads(m.data)["event_id"] for m in msgs]
            await js.delete_stream(f"T{tag.upper()}")
            return info.state.messages, ids
        finally:
            await nc.close()

    count, ids = asyncio.run(stored())
    assert count == len(expected) and ids == expected
    redis.Redis(host="127.0.0.1", port=6379).delete(stream)


def test_a_broker_that_is_down_is_one_line_and_keeps_the_events(tmp_path):
    url = f"sqlite:///{tmp_path}/accord.db"
    with open_saver(url) as saver:
        ask(build_support().compile(checkpointer=saver), "b-1", REFUND)
        waiting = len(outbox(saver))
    done = subprocess.run([ACCORD, "relay", "--db", url, "--broker", "redis://127.0.0.1:1/0",
                           "--once"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ACCORD_SUPPORT_DB": str(tmp_path / "s.db")})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: Redis at redis://127.0.0.1:1")
    with _table(url) as table:
        assert table.pending() == waiting == 2
    empty = subprocess.run([ACCORD, "relay", "--db", f"sqlite:///{tmp_path}/none.db",
                            "--broker", "redis://127.0.0.1:6379/0", "--once"],
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "no accord_outbox table" in empty.stderr, empty.stderr


class _table:
    def __init__(self, url: str) -> None:
        self.table = OutboxTable(url)

    def __enter__(self) -> OutboxTable:
        return self.table

    def __exit__(self, *exc) -> None:
        self.table.close()


RUNS = int(os.environ.get("ACCORD_TEST_EVENT_RUNS", "1000"))


@pytest.mark.timeout(600)
def test_a_consumer_sees_every_event_of_many_runs_once_with_the_relay_killed(pg_schema_url,
                                                                              tmp_path):
    stream = f"accord-kill-{uuid.uuid4().hex[:8]}"
    broker = f"redis://127.0.0.1:6379/0?stream={stream}"
    env = {**os.environ, "ACCORD_SUPPORT_DB": str(tmp_path / "support.db")}
    with open_saver(pg_schema_url) as saver:  # accord's tables exist before the relay starts
        graph = build_support().compile(checkpointer=saver)

        def start() -> subprocess.Popen:
            return subprocess.Popen([ACCORD, "relay", "--db", pg_schema_url, "--broker", broker,
                                     "--batch", "5", "--lease", "2"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        relay = start()
        client = redis.Redis(host="127.0.0.1", port=6379)
        killed_at = None
        try:
            for n in range(RUNS):
                ask(graph, f"k-{n}", QUESTION.format(n=n) if n % 10 else REFUND)
                if killed_at is None and n >= RUNS // 3 and client.xlen(stream) > 0:
                    relay.send_signal(signal.SIGKILL)  # mid-way, between publish and mark
                    relay.wait()
                    killed_at = client.xlen(stream)
                    relay = start()
            assert killed_at is not None, "the relay published nothing before the kill"
            table = OutboxTable(pg_schema_url)
            try:
                deadline = time.monotonic() + 300
                while table.pending():
                    assert relay.poll() is None, "the restarted relay stopped"
                    assert time.monotonic() < deadline, "the relay did not drain the outbox"
                    time.sleep(0.1)
            finally:
                table.close()
        finally:
            relay.send_signal(signal.SIGTERM)
            relay.wait(timeout=60)
        expected = {e["event_id"] for e in outbox(saver)}
        received = [e["event_id"] for e in _redis_events(stream)]
        client.delete(stream)
        client.close()
    assert set(received) == expected  # none lost...
    assert len(set(received)) == len(expected)  # ...and each once after deduplication
    assert len(expected) >= RUNS * 2  # every run starts a task and ends or waits
