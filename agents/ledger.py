"""The tool ledger: results of a step's tool calls, recorded durably as they happen.

LangGraph re-runs a whole node after a crash or a resume. Side-effecting tools already take an
idempotency key, so they do not act twice; the ledger also makes the re-run *see* what the first
run saw: every tool result of a task is stored under its call's key in the graph's
``BaseStore`` (``compile(store=...)``) before the step goes on, and a re-run gets the recorded
result back instead of calling the tool again. Without a store, tools simply run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langgraph.config import get_config, get_store
from langgraph.store.base import BaseStore

NAMESPACE = ("accord", "ledger")


@dataclass(frozen=True)
class Ledger:
    """Recorded tool results of one thread."""

    store: BaseStore
    """Where results are kept (the graph's store)."""
    thread_id: str
    """The thread whose results these are."""

    @property
    def namespace(self) -> tuple[str, ...]:
        return (*NAMESPACE, self.thread_id)

    def recall(self, key: str) -> tuple[bool, Any]:
        """``(True, result)`` when the call was recorded, else ``(False, None)``."""
        item = self.store.get(self.namespace, key)
        return (True, json.loads(item.value["json"])) if item is not None else (False, None)

    def record(self, key: str, tool: str, result: Any) -> Any:
        """Store a result and return it in the form a re-run will see.

        Kept as JSON text, not a JSON object: PostgreSQL's ``jsonb`` reorders keys, and a
        re-run must see the result exactly as the first run did.
        """
        text = json.dumps(result, default=str)
        self.store.put(self.namespace, key, {"tool": tool, "json": text})
        return json.loads(text)


def current_ledger() -> Ledger | None:
    """The ledger of the running node's thread, when the graph has a store."""
    try:
        store = get_store()
        thread_id = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # not inside a graph run
        return None
    if store is None or not thread_id:
        return None
    return Ledger(store, str(thread_id))
