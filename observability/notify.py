"""Notifications: a message to people when a run needs them, sent off the run's path.

Two channels, each optional: a webhook that takes Slack-compatible JSON (``{"text": ...,
"blocks": [...]}``, also what Mattermost, Rocket.Chat and most chat bridges accept) and email
over SMTP (stdlib ``smtplib``). A :class:`Notifier` owns one background thread and a bounded
queue: :meth:`Notifier.submit` never blocks and never raises, so a slow or unreachable receiver
neither slows nor fails a run. Each send is tried again with exponential backoff; a send that
still fails is logged and counted (``accord_notifications_total{outcome="failed"}``), and a
message that finds the queue full is dropped and counted (``outcome="dropped"``).

Configuration comes from Python (:func:`configure` with a :class:`NotifyConfig`) or from the
environment on first use (:meth:`NotifyConfig.from_env`). With nothing configured no thread is
started and nothing is sent.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import smtplib
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from enum import StrEnum
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from prometheus_client import REGISTRY, Counter

from accord.errors import AccordError

logger = logging.getLogger("accord.notify")


class NotifyConfigError(AccordError):
    """A notification setting is invalid (a URL accord cannot use, a negative retry count)."""


class NoticeKind(StrEnum):
    """Why people are told."""

    APPROVAL_WAIT = "approval_wait"
    """A run waits for a person's decision (an approval or an escalation)."""
    DEAD_LETTER = "dead_letter"
    """Work accord could not finish was stored as a dead letter."""
    AGENT_FLAGGED = "agent_flagged"
    """An agent crossed an alert threshold (``accord.observability.alerts``)."""


@dataclass(frozen=True)
class Notice:
    """One message, whatever channel carries it."""

    kind: NoticeKind
    """Why it is sent."""
    title: str
    """One line: the subject of an email, the bold line of a chat message."""
    text: str
    """The body (plain text, a few lines)."""
    thread_id: str | None = None
    """The thread it is about, if any."""
    link: str | None = None
    """The console's inbox item for the thread, when a console URL is configured."""
    fields: tuple[tuple[str, str], ...] = ()
    """Short facts shown beside the text (graph, agent, task, ...)."""

    def slack(self) -> dict[str, Any]:
        """The Slack-compatible JSON body of a webhook call."""
        body = f"*{self.title}*\n{self.text}"
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": body}}]
        if self.fields:
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"*{k}:* {v}"} for k, v in self.fields]})
        if self.link:
            blocks.append({"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "Open in the inbox"},
                "url": self.link}]})
        text = f"{self.title}: {self.text}" + (f" <{self.link}>" if self.link else "")
        return {"text": text, "blocks": blocks}

    def email(self, sender: str, to: tuple[str, ...]) -> EmailMessage:
        """The email carrying the notice."""
        message = EmailMessage()
        message["Subject"] = f"[accord] {self.title}"
        message["From"] = sender
        message["To"] = ", ".join(to)
        lines = [self.text, ""]
        lines += [f"{k}: {v}" for k, v in self.fields]
        if self.link:
            lines += ["", f"Open in the inbox: {self.link}"]
        message.set_content("\n".join(lines) + "\n")
        return message


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


@dataclass(frozen=True)
class NotifyConfig:
    """Where notifications go, and how hard accord tries."""

    webhook: str | None = None
    """A URL that takes Slack-compatible JSON (``ACCORD_NOTIFY_WEBHOOK``)."""
    smtp: str | None = None
    """An SMTP server, ``smtp://[user:password@]host:port`` (``ACCORD_NOTIFY_SMTP``)."""
    email_to: tuple[str, ...] = ()
    """Recipients of the emails (``ACCORD_NOTIFY_EMAIL_TO``, comma separated)."""
    email_from: str = "accord@localhost"
    """The sender of the emails (``ACCORD_NOTIFY_EMAIL_FROM``)."""
    console_url: str | None = None
    """The console's base URL; a notice links to ``{console_url}/console/inbox/{thread_id}``
    (``ACCORD_CONSOLE_URL``)."""
    retries: int = 3
    """Sends tried again after the first fails (``ACCORD_NOTIFY_RETRIES``)."""
    backoff: float = 0.5
    """Seconds before the first retry, doubled for each next one (``ACCORD_NOTIFY_BACKOFF``)."""
    timeout: float = 5.0
    """Seconds one send may take (``ACCORD_NOTIFY_TIMEOUT``)."""
    queue_size: int = 1000
    """Messages waiting to be sent at most; more are dropped and counted."""
    kinds: frozenset[NoticeKind] = field(default_factory=lambda: frozenset(NoticeKind))
    """What is sent (``ACCORD_NOTIFY_KINDS``, comma separated; default all)."""

    def __post_init__(self) -> None:
        for name, url, schemes in (("webhook", self.webhook, ("http", "https")),
                                   ("smtp", self.smtp, ("smtp",))):
            if url is not None:
                parts = urlsplit(url)
                if parts.scheme not in schemes or not parts.hostname:
                    raise NotifyConfigError(
                        f"notification {name} URL {url!r} is not {' or '.join(schemes)}://host…")
        if self.smtp and not self.email_to:
            raise NotifyConfigError("an SMTP server is set but no recipient: set "
                                    "ACCORD_NOTIFY_EMAIL_TO (or email_to)")
        if self.retries < 0 or self.backoff < 0 or self.timeout <= 0 or self.queue_size < 1:
            raise NotifyConfigError("notification retries, backoff, timeout and queue size "
                                    "must be positive")

    @property
    def enabled(self) -> bool:
        """Whether any channel is configured."""
        return bool(self.webhook or self.smtp)

    def link(self, thread_id: str | None) -> str | None:
        """The console's inbox item for ``thread_id`` (None without a console URL)."""
        if not self.console_url or not thread_id:
            return None
        return f"{self.console_url.rstrip('/')}/console/inbox/{quote(str(thread_id), safe='')}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifyConfig:
        """The configuration the ``ACCORD_NOTIFY_*`` variables give."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "webhook": env.get("ACCORD_NOTIFY_WEBHOOK") or None,
            "smtp": env.get("ACCORD_NOTIFY_SMTP") or None,
            "email_to": _split(env.get("ACCORD_NOTIFY_EMAIL_TO")),
            "console_url": env.get("ACCORD_CONSOLE_URL") or None,
        }
        if env.get("ACCORD_NOTIFY_EMAIL_FROM"):
            values["email_from"] = env["ACCORD_NOTIFY_EMAIL_FROM"]
        try:
            for key, name, kind in (("retries", "RETRIES", int), ("backoff", "BACKOFF", float),
                                    ("timeout", "TIMEOUT", float)):
                if env.get(f"ACCORD_NOTIFY_{name}"):
                    values[key] = kind(env[f"ACCORD_NOTIFY_{name}"])
            if env.get("ACCORD_NOTIFY_KINDS"):
                values["kinds"] = frozenset(NoticeKind(k) for k in
                                            _split(env["ACCORD_NOTIFY_KINDS"]))
        except ValueError as exc:
            raise NotifyConfigError(f"bad ACCORD_NOTIFY_* setting: {exc}") from None
        return cls(**values)


@cache
def _counter() -> Counter:
    return Counter("accord_notifications", "Notifications, by channel and outcome",
                   ["channel", "outcome"], registry=REGISTRY)


def post_webhook(url: str, notice: Notice, timeout: float) -> None:
    """POST the notice's Slack JSON to ``url``; raises unless the receiver answers 2xx."""
    request = urllib.request.Request(
        url, data=json.dumps(notice.slack()).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "accord-notify"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http[s] only)
        if not 200 <= response.status < 300:
            raise OSError(f"webhook answered {response.status}")


def send_email(config: NotifyConfig, notice: Notice) -> None:
    """Send the notice's email through ``config.smtp``."""
    parts = urlsplit(config.smtp or "")
    with smtplib.SMTP(parts.hostname or "", parts.port or 25, timeout=config.timeout) as smtp:
        if parts.username:
            smtp.login(parts.username, parts.password or "")
        smtp.send_message(notice.email(config.email_from, config.email_to))


_STOP = object()


class Notifier:
    """One background sender: a bounded queue and the thread that empties it."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.queue_size)
        self._closing = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._thread = threading.Thread(target=self._work, name="accord-notify", daemon=True)
        self._thread.start()

    def channels(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if self.config.webhook:
            out.append(("webhook", lambda n: post_webhook(self.config.webhook, n,
                                                          self.config.timeout)))
        if self.config.smtp:
            out.append(("email", lambda n: send_email(self.config, n)))
        return out

    def submit(self, notice: Notice) -> bool:
        """Queue ``notice`` for every channel; False when it was dropped. Never blocks."""
        if notice.kind not in self.config.kinds or self._closing.is_set():
            return False
        if notice.link is None and notice.thread_id:
            notice = replace(notice, link=self.config.link(notice.thread_id))
        with self._idle:
            try:
                self._queue.put_nowait(notice)
            except queue.Full:
                for name, _ in self.channels():
                    _counter().labels(name, "dropped").inc()
                logger.warning("notification queue full: %s dropped", notice.title)
                return False
            self._busy += 1
        return True

    def _work(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is _STOP:
                return
            try:
                for name, send in self.channels():
                    self._deliver(name, send, notice)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, name: str, send: Any, notice: Notice) -> None:
        delay = self.config.backoff
        for attempt in range(self.config.retries + 1):
            try:
                send(notice)
            except Exception as exc:  # noqa: BLE001 - any failure of a receiver is retried
                if attempt < self.config.retries and not self._closing.wait(delay):
                    logger.info("%s notification failed (%s), retrying in %.2fs", name, exc,
                                delay)
                    delay *= 2
                    continue
                _counter().labels(name, "failed").inc()
                logger.warning("%s notification %r not sent after %d attempts: %s", name,
                               notice.title, attempt + 1, exc)
                return
            _counter().labels(name, "sent").inc()
            logger.debug("%s notification sent: %s", name, notice.title)
            return

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message was sent or given up; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float | None = 5.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), then stop the thread."""
        self.flush(timeout)
        self._closing.set()
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass
        self._thread.join(timeout)


_lock = threading.Lock()
_current: Notifier | None = None
_loaded = False


def configure(config: NotifyConfig | None, *, drain: float = 5.0) -> Notifier | None:
    """Use ``config`` from now on (None: send nothing); the previous sender gets ``drain``
    seconds to send what it holds, then stops."""
    global _current, _loaded
    with _lock:
        previous, _loaded = _current, True
        _current = Notifier(config) if config is not None and config.enabled else None
    if previous is not None:
        previous.close(timeout=drain)
    return _current


def notifier() -> Notifier | None:
    """The process's sender: configured by :func:`configure`, else by the environment."""
    global _current, _loaded
    if _loaded:
        return _current
    config = NotifyConfig.from_env()  # outside the lock: a bad setting raises to the caller
    with _lock:
        if not _loaded:
            _current = Notifier(config) if config.enabled else None
            _loaded = True
        return _current


def notify(notice: Notice) -> bool:
    """Send ``notice`` in the background, if notifications are configured; never raises."""
    try:
        sender = notifier()
        return sender.submit(notice) if sender is not None else False
    except Exception:  # noqa: BLE001 - a notification must not fail the run
        logger.warning("could not queue a notification", exc_info=True)
        return False


@atexit.register
def _drain() -> None:
    if _current is not None:
        _current.close(timeout=_current.config.timeout)


__all__ = ["Notice", "NoticeKind", "NotifyConfig", "NotifyConfigError", "Notifier", "configure",
           "notifier", "notify", "post_webhook", "send_email"]
