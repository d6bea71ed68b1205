"""The PII vault: a thread's placeholders and the real values they stand for.

It lives outside the checkpoint: a table ``accord_pii_vault`` in the database of accord's saver
(SQLite or PostgreSQL, beside ``accord_threads``), or a dict beside the in-memory saver for
``memory://``. Checkpoints, the recorded request, the audit log and model requests only ever
hold the placeholders; a tool that needs a real value resolves it with :func:`reveal`, and
:func:`conceal` turns the thread's values in a tool's result back into placeholders.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from langgraph.config import get_config

from accord.checkpoints.runs import RUN_KEY, RunHandle
from accord.guardrails.pii import PLACEHOLDER

_TABLE = (
    "CREATE TABLE IF NOT EXISTS accord_pii_vault (thread_id TEXT NOT NULL,"
    " placeholder TEXT NOT NULL, value TEXT NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY (thread_id, placeholder))"
)
_ready: weakref.WeakSet[Any] = weakref.WeakSet()
_memory: weakref.WeakKeyDictionary[Any, dict[str, dict[str, str]]] = weakref.WeakKeyDictionary()


def _sql(saver: Any, text: str) -> str:
    return saver.dialect.sql(text)


def _setup(saver: Any, cur: Any) -> None:
    if saver not in _ready:
        cur.execute(_TABLE)


def _tx(saver: Any, body: Callable[[Any], Any]) -> Any:
    result = saver._transaction(None, body)
    _ready.add(saver)  # the table exists once a transaction that made it committed
    return result


def _rows(cur: Any) -> dict[str, str]:
    out = {}
    for row in cur.fetchall():
        placeholder, value = (row["placeholder"], row["value"]) if isinstance(row, dict) else row
        out[placeholder] = value
    return out


def _is_memory(saver: Any) -> bool:
    return getattr(saver.dialect, "name", "") == "memory"


def vault_entries(saver: Any, thread_id: str) -> dict[str, str]:
    """A thread's placeholders and their values."""
    if _is_memory(saver):
        return dict(_memory.get(saver, {}).get(thread_id, {}))

    def body(cur: Any) -> dict[str, str]:
        _setup(saver, cur)
        cur.execute(_sql(saver, "SELECT placeholder, value FROM accord_pii_vault"
                                " WHERE thread_id = %s"), (thread_id,))
        return _rows(cur)

    return _tx(saver, body)


def vault_update(saver: Any, thread_id: str,
                 plan: Callable[[dict[str, str]], Mapping[str, str]]) -> dict[str, str]:
    """Read the thread's entries, let ``plan(entries)`` name the new ones, store them; in one
    transaction (a placeholder another writer took first makes the plan run again)."""
    if _is_memory(saver):
        entries = _memory.setdefault(saver, {}).setdefault(thread_id, {})
        entries.update(plan(dict(entries)))
        return dict(entries)

    def body(cur: Any) -> dict[str, str] | None:
        _setup(saver, cur)
        cur.execute(_sql(saver, "SELECT placeholder, value FROM accord_pii_vault"
                                " WHERE thread_id = %s"), (thread_id,))
        entries = _rows(cur)
        new = plan(dict(entries))
        now = datetime.now(UTC).isoformat()
        for placeholder, value in new.items():
            cur.execute(_sql(saver, "INSERT INTO accord_pii_vault (thread_id, placeholder, value,"
                                    " created_at) VALUES (%s, %s, %s, %s)"
                                    " ON CONFLICT (thread_id, placeholder) DO NOTHING"),
                        (thread_id, placeholder, value, now))
            if cur.rowcount != 1:
                return None
        return {**entries, **new}

    for _ in range(5):
        done = _tx(saver, body)
        if done is not None:
            return done
    raise RuntimeError(f"could not store the PII vault entries of thread {thread_id!r}")


def vault_forget(saver: Any, thread_ids: list[str]) -> None:
    """Delete the threads' vault entries (with the thread's retention)."""
    if _is_memory(saver):
        for thread_id in thread_ids:
            _memory.get(saver, {}).pop(thread_id, None)
        return

    def body(cur: Any) -> None:
        _setup(saver, cur)
        for thread_id in thread_ids:
            cur.execute(_sql(saver, "DELETE FROM accord_pii_vault WHERE thread_id = %s"),
                        (thread_id,))

    _tx(saver, body)


def _current() -> tuple[Any, str] | None:
    try:
        configurable = get_config().get("configurable", {})
    except RuntimeError:  # not inside a graph run
        return None
    handle = configurable.get(RUN_KEY)
    if not isinstance(handle, RunHandle) or handle.saver is None:
        return None
    return handle.saver, handle.thread_id


def _walk(value: Any, text_fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text_fn(value)
    if isinstance(value, Mapping):
        return {k: _walk(v, text_fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_walk(v, text_fn) for v in value)
    return value


def reveal(value: Any) -> Any:
    """``value`` with the running thread's placeholders replaced by their real values (for a
    tool that needs them); unchanged outside a run on accord's saver."""
    found = _current()
    if found is None or not any(PLACEHOLDER.search(s) for s in _strings(value)):
        return value
    entries = vault_entries(*found)
    return _walk(value, lambda s: PLACEHOLDER.sub(lambda m: entries.get(m.group(0), m.group(0)), s))


def conceal(value: Any) -> Any:
    """``value`` with the running thread's vaulted values replaced by their placeholders (a
    tool's result, before it goes back into the state)."""
    found = _current()
    if found is None:
        return value
    entries = sorted(vault_entries(*found).items(), key=lambda item: -len(item[1]))
    if not entries:
        return value

    def hide(text: str) -> str:
        for placeholder, real in entries:
            text = text.replace(real, placeholder)
        return text

    return _walk(value, hide)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


__all__ = ["conceal", "reveal", "vault_entries", "vault_forget", "vault_update"]
