"""Notifications: Slack-compatible JSON to a real webhook receiver and email to a real SMTP server
on loopback, for the support example's approval wait and for a dead letter; retries with backoff
against a receiver that fails at first; a receiver that is down neither slows nor fails a run."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from accord.checkpoints import open_saver
from accord.graphs import Router, Step, Workflow
from accord.graphs.support import SupportDB, build_support
from accord.observability import notify
from accord.observability.notify import Notice, NoticeKind, NotifyConfig, NotifyConfigError
from accord.records import AuditKind, ThreadStatus

REFUND = "I was charged twice for INV-1004. Please refund $150."
CONSOLE = "http://console.test:8123"

pytestmark = pytest.mark.usefixtures("quiet_notifier")


def sent(channel: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("accord_notifications_total",
                                     {"channel": channel, "outcome": outcome}) or 0.0


def ask_refund(tmp_path, url: str | None = None) -> tuple[str, Any]:
    workflow = build_support(db=SupportDB(tmp_path / "support.db"))
    thread = f"n-{uuid.uuid4().hex[:8]}"
    with open_saver(url or f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = workflow.compile(checkpointer=saver)
        graph.invoke({"messages": [{"role": "user", "content": REFUND}]},
                     {"configurable": {"thread_id": thread}})
        record = saver.threads.get(thread)
    return thread, record


def broken(state: dict[str, Any]) -> Step:
    raise RuntimeError("the ledger service is down")


def failing_workflow() -> Workflow:
    """router -> a plain node that always fails: the run fails and leaves a dead letter."""
    return (Workflow("ledger", router=Router(default="ledger"), max_hops=4)
            .node("ledger", broken)
            .transitions({"router": ["ledger", "END"], "ledger": ["END"]}))


def test_an_approval_wait_reaches_the_webhook_with_the_inbox_link(tmp_path, receiver, durable_url):
    notify.configure(NotifyConfig(webhook=receiver.url, console_url=CONSOLE))
    thread, record = ask_refund(tmp_path, durable_url)
    assert record.status is ThreadStatus.INTERRUPTED
    [body] = receiver.wait_for(lambda bodies: len(bodies) >= 1)
    assert body["text"].startswith("Approval needed: issue_refund")
    assert f"{CONSOLE}/console/inbox/{thread}" in body["text"]
    section, context, actions = body["blocks"]
    assert "refund of $150.00 on INV-1004" in section["text"]["text"]
    assert '"invoice_id": "INV-1004"' in section["text"]["text"]
    facts = {e["text"] for e in context["elements"]}
    assert f"*thread:* {thread}" in facts and "*agent:* billing_rules" in facts
    assert actions["elements"][0]["url"] == f"{CONSOLE}/console/inbox/{thread}"


def test_a_dead_letter_reaches_the_webhook_once(tmp_path, receiver):
    notify.configure(NotifyConfig(webhook=receiver.url, console_url=CONSOLE))
    thread = f"d-{uuid.uuid4().hex[:8]}"
    with open_saver(f"sqlite:///{tmp_path}/accord.db") as saver:
        graph = failing_workflow().compile(checkpointer=saver)
        with pytest.raises(RuntimeError, match="ledger service is down"):
            graph.invoke({"messages": [{"role": "user", "content": "post it"}]},
                         {"configurable": {"thread_id": thread}})
        [letter] = [e.details()["letter"] for e in saver.audit_log(thread)
                    if e.kind is AuditKind.DEAD_LETTERED]
    [body] = receiver.wait_for(lambda bodies: len(bodies) >= 1)
    assert notify.notifier().flush(10)
    assert len(receiver.bodies) == 1  # one dead letter, told once
    assert body["text"].startswith("Dead letter: ledger could not finish")
    assert "the ledger service is down" in body["blocks"][0]["text"]["text"]
    facts = {e["text"] for e in body["blocks"][1]["elements"]}
    assert {"*node:* ledger", "*reason:* failed", f"*letter:* {letter}"} <= facts
    assert body["blocks"][2]["elements"][0]["url"] == f"{CONSOLE}/console/inbox/{thread}"


def test_the_email_carries_the_inbox_link(tmp_path, smtp):
    sink, url = smtp
    notify.configure(NotifyConfig(smtp=url, email_to=("ops@example.test",),
                                  email_from="accord@example.test", console_url=CONSOLE))
    thread, _ = ask_refund(tmp_path)
    assert notify.notifier().flush(30)
    [(to, message)] = sink.messages
    assert to == ["ops@example.test"]
    assert message["Subject"] == "[accord] Approval needed: issue_refund"
    assert message["From"] == "accord@example.test"
    text = message.get_payload(decode=True).decode()
    assert f"Open in the inbox: {CONSOLE}/console/inbox/{thread}" in text
    assert "refund of $150.00 on INV-1004" in text


def test_a_failing_receiver_is_retried_with_backoff(receiver):
    receiver.fail = 2
    before = sent("webhook", "sent")
    sender = notify.configure(NotifyConfig(webhook=receiver.url, retries=3, backoff=0.05))
    started = time.monotonic()
    assert sender.submit(Notice(NoticeKind.DEAD_LETTER, "t", "x", thread_id="r-1"))
    [body] = receiver.wait_for(lambda bodies: len(bodies) >= 1)
    assert receiver.attempts == 3 and body["text"] == "t: x"
    assert time.monotonic() - started >= 0.05 + 0.1  # waited 0.05 s, then 0.1 s
    assert sender.flush(10) and sent("webhook", "sent") - before == 1


def test_a_receiver_that_keeps_failing_is_given_up_and_counted(receiver):
    receiver.fail = 100
    before = sent("webhook", "failed")
    sender = notify.configure(NotifyConfig(webhook=receiver.url, retries=2, backoff=0.01))
    sender.submit(Notice(NoticeKind.DEAD_LETTER, "t", "x"))
    assert sender.flush(10)
    assert receiver.attempts == 3 and receiver.bodies == []
    assert sent("webhook", "failed") - before == 1


def test_a_receiver_that_is_down_does_not_slow_or_fail_the_run(tmp_path):
    hanging = socket.socket()  # accepts connections (backlog) and never answers
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)
    try:
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}/hook"
        notify.configure(NotifyConfig(webhook=url, timeout=30, retries=3, backoff=10))
        started = time.monotonic()
        thread, record = ask_refund(tmp_path)
        took = time.monotonic() - started
        assert record.status is ThreadStatus.INTERRUPTED
        assert took < 20, took  # a send in the run's path would take 30 s at least
        assert notify.notifier().flush(0.2) is False  # still trying, in the background
    finally:
        hanging.close()


def test_a_full_queue_drops_and_counts(receiver):
    before = sent("webhook", "dropped")
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(4)
    try:
        sender = notify.configure(NotifyConfig(
            webhook=f"http://127.0.0.1:{hanging.getsockname()[1]}/", timeout=30, queue_size=1))
        results = [sender.submit(Notice(NoticeKind.DEAD_LETTER, f"n{i}", "x")) for i in range(5)]
        assert results[0] is True and False in results
        assert sent("webhook", "dropped") - before == results.count(False)
    finally:
        hanging.close()


def test_nothing_configured_sends_nothing_and_starts_nothing():
    config = NotifyConfig.from_env({})
    assert not config.enabled
    assert notify.configure(config) is None and notify.notify(
        Notice(NoticeKind.DEAD_LETTER, "t", "x")) is False


def test_configuration_from_the_environment():
    config = NotifyConfig.from_env({
        "ACCORD_NOTIFY_WEBHOOK": "http://127.0.0.1:9/hook", "ACCORD_NOTIFY_SMTP": "smtp://h:25",
        "ACCORD_NOTIFY_EMAIL_TO": "a@x.test, b@x.test", "ACCORD_NOTIFY_EMAIL_FROM": "s@x.test",
        "ACCORD_CONSOLE_URL": "https://console.test/", "ACCORD_NOTIFY_RETRIES": "5",
        "ACCORD_NOTIFY_KINDS": "approval_wait"})
    assert config.email_to == ("a@x.test", "b@x.test") and config.retries == 5
    assert config.kinds == {NoticeKind.APPROVAL_WAIT}
    assert config.link("t 1") == "https://console.test/console/inbox/t%201"
    with pytest.raises(NotifyConfigError, match="not http or https"):
        NotifyConfig(webhook="ftp://host/x")
    with pytest.raises(NotifyConfigError, match="no recipient"):
        NotifyConfig.from_env({"ACCORD_NOTIFY_SMTP": "smtp://h:25"})
    with pytest.raises(NotifyConfigError, match="bad ACCORD_NOTIFY"):
        NotifyConfig.from_env({"ACCORD_NOTIFY_WEBHOOK": "http://h/", "ACCORD_NOTIFY_RETRIES": "x"})
