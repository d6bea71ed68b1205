"""The PII vault: a thread's placeholders and the real values they stand for.

It lives outside the checkpoint: a table ``accord_pii_vault`` in the database of accord's saver
(SQLite or PostgreSQL, beside ``accord_threads``; deleted with the thread), or a dict in the
in-memory journal for ``memory://`` and foreign savers. Checkpoints, the recorded request, the audit log and model requests only ever
hold the placeholders; a tool that needs a real value resolves it with :func:`reveal`, and
:func:`conceal` turns the thread's values in a tool's result back into placeholders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from langgraph.config import get_config

from accord.checkpoints.runs import RUN_KEY, RunHandle
from accord.guardrails.pii import PLACEHOLDER


def _sql(saver: Any, text: str) -> str:
    return saver.dialect.sql(text)


def _rows(cur: Any) -> dict[str, str]:
    out = {}
    for row in cur.fetchall():
        placeholder, value = (row["placeholder"], row["value"]) if isinstance(row, dict) else row
        out[placeholder] = value
    return out


def _memory(saver: Any) -> dict[str, dict[str, str]] | None:
    """The in-process vault of ``memory://`` and foreign savers (None: a SQL database)."""
    return getattr(saver.dialect, "vault", None)


def vault_entries(saver: Any, thread_id: str) -> dict[str, str]:
    """A thread's placeholders and their values."""
    memory = _memory(saver)
    if memory is not None:
        return dict(memory.get(thread_id, {}))

    def body(cur: Any) -> dict[str, str]:
        cur.execute(_sql(saver, "SELECT placeholder, value FROM accord_pii_vault"
                                " WHERE thread_id = %s"), (thread_id,))
        return _rows(cur)

    return saver._read(body)


def vault_update(saver: Any, thread_id: str,
                 plan: Callable[[dict[str, str]], Mapping[str, str]]) -> dict[str, str]:
    """Read the thread's entries, let ``plan(entries)`` name the new ones, store them; in one
    transaction (a placeholder another writer took first makes the plan run again)."""
    memory = _memory(saver)
    if memory is not None:
        with saver._journal_lock:
            entries = memory.setdefault(thread_id, {})
            entries.update(plan(dict(entries)))
            return dict(entries)

    def body(cur: Any) -> dict[str, str] | None:
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
        done = saver._transaction(None, body)
        if done is not None:
            return done
    raise RuntimeError(f"could not store the PII vault entries of thread {thread_id!r}")


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


__all__ = ["conceal", "reveal", "vault_entries", "vault_update"]
