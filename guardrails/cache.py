"""The request cache: an LLM agent asked the same thing again is answered from ``accord_cache``.

``Limits(cache=CacheRule(ttl=600))`` (or ``cache: {ttl: 600, agents: [faq]}`` in the limits
YAML) puts :class:`ModelCallCache`, a langchain ``AgentMiddleware``, outermost in each chosen
LLM agent's own loop. A model call is keyed by the agent id and version, the model tier the
spec names, the system prompt, the tools the model is offered and the normalised conversation
(message kinds, text with its whitespace collapsed, tool calls by name and arguments; never
message, tool-call, task or thread ids, which differ between runs). A hit within the TTL returns the stored
answer with fresh ids: no model call, no tokens, no rate-limit or budget spent, recorded as a
``cache_hit`` audit event of the agent's step.

What is never stored: an answer that calls a tool which is not :func:`~accord.agents.read_only`
(a side effect must be decided afresh, and approved where its policy says so), an answer with a
structured response, an empty answer. Entries live beside the checkpoints (SQLite or
PostgreSQL, shared by every process on the database), in this process on ``memory://``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain.agents.middleware.types import ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict, messages_from_dict

from accord.guardrails.call import CALL
from accord.records import AuditKind

_DDL = (
    "CREATE TABLE IF NOT EXISTS accord_cache (key TEXT PRIMARY KEY, agent TEXT NOT NULL,"
    " version TEXT NOT NULL, answer TEXT NOT NULL, stored_at DOUBLE PRECISION NOT NULL,"
    " expires_at DOUBLE PRECISION NOT NULL, hits INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS accord_cache_expiry ON accord_cache (expires_at)",
)

_now: Callable[[], float] = time.time
"""The clock entries expire by (seconds since the epoch)."""

_SPACE = re.compile(r"\s+")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return _SPACE.sub(" ", content).strip()
    if isinstance(content, list):  # content blocks: their text, in order
        return " ".join(_text(b.get("text", "") if isinstance(b, dict) else b) for b in content)
    return _text(str(content))


def _normalised(message: BaseMessage, ids: tuple[str, ...]) -> dict[str, Any]:
    text = _text(message.content)
    for run_id in ids:  # the handoff names its task: the same question in another run
        text = text.replace(run_id, "<id>")
    out: dict[str, Any] = {"type": message.type, "text": text}
    calls = getattr(message, "tool_calls", None)
    if calls:
        out["calls"] = [{"name": c["name"], "args": c.get("args") or {}} for c in calls]
    if message.type == "tool":
        out["tool"] = getattr(message, "name", None)
    return out


def _tool_names(tools: Iterable[Any]) -> list[str]:
    return sorted(str(getattr(t, "name", None) or (t.get("name") if isinstance(t, dict) else t))
                  for t in tools)


def cache_key(agent: str, version: str, model: str, request: Any,
              ids: tuple[str, ...] = ()) -> str:
    """The key of a model call: who asks, with what, and what was said (see the module);
    ``ids`` (the task and thread ids of the call) are left out of the text."""
    system = request.system_message
    body = {
        "agent": agent, "version": version, "model": model,
        "system": _text(system.content) if system is not None else None,
        "tools": _tool_names(request.tools or ()),
        "messages": [_normalised(m, ids) for m in request.messages],
    }
    encoded = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def storable(response: Any, tools: Iterable[Any]) -> AIMessage | None:
    """The answer to store, or None when it must not be (see the module)."""
    if not isinstance(response, ModelResponse) or response.structured_response is not None:
        return None
    if len(response.result) != 1 or not isinstance(response.result[0], AIMessage):
        return None
    answer = response.result[0]
    if not answer.content and not answer.tool_calls:
        return None
    from accord.agents.actions import READ_ONLY  # accord.agents imports the guardrails

    by_name = {getattr(t, "name", None): t for t in tools}
    for call in answer.tool_calls:
        tool = by_name.get(call["name"])
        if tool is None or not (getattr(tool, "metadata", None) or {}).get(READ_ONLY):
            return None  # a side effect is never replayed from the cache
    return answer


def _fresh(answer: AIMessage) -> AIMessage:
    """The stored answer as a new message: its own id, new tool-call ids, no token usage."""
    calls = [{**c, "id": f"call_{uuid.uuid4().hex[:24]}"} for c in answer.tool_calls]
    return answer.model_copy(update={"id": f"cached-{uuid.uuid4().hex}", "tool_calls": calls,
                                     "usage_metadata": None})


class CacheStore:
    """Cached answers of one database (or of this process)."""

    def get(self, key: str, now: float) -> AIMessage | None:
        raise NotImplementedError

    def put(self, key: str, agent: str, version: str, answer: AIMessage, now: float,
            ttl: float) -> None:
        raise NotImplementedError

    def purge(self, now: float) -> int:
        """Delete expired entries; how many."""
        raise NotImplementedError


def _dump(answer: AIMessage) -> str:
    return json.dumps(message_to_dict(answer), default=str)


def _load(text: str) -> AIMessage:
    [message] = messages_from_dict([json.loads(text)])
    return message  # type: ignore[return-value]


class MemoryCache(CacheStore):
    """Answers kept in this process."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> AIMessage | None:
        with self._lock:
            found = self.entries.get(key)
        return _load(found[0]) if found is not None and found[1] > now else None

    def put(self, key: str, agent: str, version: str, answer: AIMessage, now: float,
            ttl: float) -> None:
        with self._lock:
            self.entries[key] = (_dump(answer), now + ttl)

    def purge(self, now: float) -> int:
        with self._lock:
            gone = [k for k, (_, expires) in self.entries.items() if expires <= now]
            for k in gone:
                del self.entries[k]
        return len(gone)


class SqlCache(CacheStore):
    """Answers in ``accord_cache`` of a saver's database, through its transactions."""

    def __init__(self, saver: Any) -> None:
        self.saver = saver
        self._ready = False

    def _run(self, body: Callable[[Any], Any]) -> Any:
        def run(cur: Any) -> Any:
            if not self._ready:
                for statement in _DDL:
                    cur.execute(statement)
            return body(cur)

        result = self.saver._transaction(None, run)
        self._ready = True  # known to exist once committed: a transaction cut short rolls them back
        return result

    def get(self, key: str, now: float) -> AIMessage | None:
        sql = self.saver.dialect.sql

        def body(cur: Any) -> str | None:
            cur.execute(sql("UPDATE accord_cache SET hits = hits + 1 WHERE key = %s AND"
                            " expires_at > %s RETURNING answer"), (key, now))
            row = cur.fetchone()
            if row is None:
                return None
            return row["answer"] if isinstance(row, dict) else row[0]

        found = self._run(body)
        return _load(found) if found is not None else None

    def put(self, key: str, agent: str, version: str, answer: AIMessage, now: float,
            ttl: float) -> None:
        sql = self.saver.dialect.sql
        self._run(lambda cur: cur.execute(sql(
            "INSERT INTO accord_cache (key, agent, version, answer, stored_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
            " answer = excluded.answer, stored_at = excluded.stored_at,"
            " expires_at = excluded.expires_at, hits = 0"),
            (key, agent, version, _dump(answer), now, now + ttl)))

    def purge(self, now: float) -> int:
        sql = self.saver.dialect.sql

        def body(cur: Any) -> int:
            cur.execute(sql("DELETE FROM accord_cache WHERE expires_at <= %s"), (now,))
            return max(cur.rowcount or 0, 0)

        return self._run(body)


_STORES: weakref.WeakKeyDictionary[Any, CacheStore] = weakref.WeakKeyDictionary()
_LOCAL = MemoryCache()
"""Answers of runs without accord's saver."""


def cache_for(saver: Any) -> CacheStore:
    """The cache of ``saver``'s database (in this process for ``memory://`` or no saver)."""
    if saver is None:
        return _LOCAL
    store = _STORES.get(saver)
    if store is None:
        dialect = getattr(getattr(saver, "dialect", None), "name", None)
        store = SqlCache(saver) if dialect in ("sqlite", "postgres") else MemoryCache()
        _STORES[saver] = store
    return store


class ModelCallCache(AgentMiddleware):
    """Answers one agent's repeated model calls from the cache (see the module)."""

    def __init__(self, spec: Any, ttl: float) -> None:
        super().__init__()
        self.spec = spec
        self.ttl = ttl
        """Seconds an answer stays valid."""

    async def awrap_model_call(self, request: Any,
                               handler: Callable[[Any], Awaitable[Any]]) -> Any:
        call = CALL.get()
        if call is None:  # not inside an accord agent node
            return await handler(request)
        store = cache_for(call.saver)
        key = cache_key(self.spec.id, self.spec.version, self.spec.model or "small", request,
                        tuple(i for i in (call.task_id, call.thread_id) if i))
        now = _now()
        cached = await asyncio.to_thread(store.get, key, now)
        if cached is not None:
            call.note(AuditKind.CACHE_HIT, key=key[:16], version=self.spec.version)
            return ModelResponse(result=[_fresh(cached)])
        response = await handler(request)
        answer = storable(response, request.tools or ())
        if answer is not None:
            await asyncio.to_thread(store.put, key, self.spec.id, self.spec.version, answer,
                                    now, self.ttl)
        return response


__all__ = ["CacheStore", "MemoryCache", "ModelCallCache", "SqlCache", "cache_for", "cache_key",
           "storable"]
