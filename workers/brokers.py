"""Where the relay publishes accord's events: Redis Streams or NATS JetStream, by URL.

- ``redis://host:port/db?stream=accord.events&maxlen=100000``: ``XADD`` to the stream (trimmed
  to about ``maxlen`` entries), fields ``event_id``, ``type``, ``thread_id`` and ``event`` (the
  JSON);
- ``nats://host:port?stream=ACCORD&subject=accord.events``: a JetStream publish to
  ``<subject>.<type>`` with the ``Nats-Msg-Id`` header set to the event id, so JetStream drops a
  redelivery within its duplicate window; the stream is created when missing.

Both go through their maintained clients (``redis``, ``nats-py``). A broker that cannot be
reached raises :class:`BrokerUnavailable` (the relay keeps the events and tries again).
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

from accord.errors import AccordError

DEFAULT_STREAM = "accord.events"
DEFAULT_NATS_STREAM = "ACCORD"


class BrokerUnavailable(AccordError):
    """The broker refused or could not be reached; nothing was published."""


class BrokerURLError(AccordError):
    """A broker URL accord cannot use."""


class Broker(Protocol):
    """What the relay needs of a broker."""

    name: str

    async def connect(self) -> None: ...

    async def publish(self, event: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


def _query(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), options


class RedisStreams:
    """Events appended to a Redis stream."""

    name = "redis"

    def __init__(self, url: str) -> None:
        self.url, options = _query(url)
        self.stream = options.get("stream", DEFAULT_STREAM)
        self.maxlen = int(options.get("maxlen", "1000000"))
        self._client: Any = None

    async def connect(self) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(self.url, socket_connect_timeout=5,
                                            socket_timeout=10)
        try:
            await self._client.ping()
        except (OSError, redis.RedisError) as exc:
            await self.close()
            raise BrokerUnavailable(f"Redis at {self.url}: {exc}") from None

    async def publish(self, event: dict[str, Any]) -> None:
        import redis.asyncio as redis

        if self._client is None:
            await self.connect()
        try:
            await self._client.xadd(self.stream, {
                "event_id": event["event_id"], "type": event["type"],
                "thread_id": event["thread_id"], "event": json.dumps(event, default=str)},
                maxlen=self.maxlen, approximate=True)
        except (OSError, redis.RedisError) as exc:
            await self.close()
            raise BrokerUnavailable(f"Redis at {self.url}: {exc}") from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - a dead connection closes as it can
                pass


class NatsJetStream:
    """Events published to NATS JetStream, deduplicated by message id."""

    name = "nats"

    def __init__(self, url: str) -> None:
        self.url, options = _query(url)
        self.stream = options.get("stream", DEFAULT_NATS_STREAM)
        self.subject = options.get("subject", DEFAULT_STREAM)
        self._nc: Any = None
        self._js: Any = None

    async def connect(self) -> None:
        import nats
        from nats.js.errors import NotFoundError

        try:
            self._nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=0,
                                          allow_reconnect=False)
            self._js = self._nc.jetstream()
            try:
                await self._js.stream_info(self.stream)
            except NotFoundError:
                await self._js.add_stream(name=self.stream, subjects=[f"{self.subject}.>"])
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            await self.close()
            raise BrokerUnavailable(f"NATS at {self.url}: {exc or type(exc).__name__}") from None

    async def publish(self, event: dict[str, Any]) -> None:
        import nats

        if self._js is None:
            await self.connect()
        try:
            await self._js.publish(f"{self.subject}.{event['type']}",
                                   json.dumps(event, default=str).encode(),
                                   headers={"Nats-Msg-Id": event["event_id"]}, timeout=10)
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            await self.close()
            raise BrokerUnavailable(f"NATS at {self.url}: {exc or type(exc).__name__}") from None

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception:  # noqa: BLE001 - a dead connection closes as it can
                pass


def open_broker(url: str) -> Broker:
    """The broker a URL names (not yet connected)."""
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return RedisStreams(url)
    if scheme in ("nats", "tls"):
        return NatsJetStream(url)
    raise BrokerURLError(f"broker URL {url!r}: expected redis://… (Redis Streams) or nats://… "
                         "(NATS JetStream)")


__all__ = ["Broker", "BrokerURLError", "BrokerUnavailable", "NatsJetStream", "RedisStreams",
           "open_broker"]
