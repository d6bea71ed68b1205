"""Feedback labels as a LangSmith dataset, when LangSmith is configured.

With ``LANGSMITH_API_KEY`` set (and ``LANGSMITH_ENDPOINT`` for a self-hosted LangSmith), the
console's labels go to the dataset ``$ACCORD_LANGSMITH_DATASET`` (default
``accord-feedback``), created on first export, through langsmith's own ``Client``. One example
per label: inputs are the thread (and step) with the request it answered, outputs the label,
the note and the thread's reply, metadata who labelled it and when. An example's id is derived
from the label's id, so exporting again sends the same ids. Without the key nothing is sent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from accord.errors import AccordError

KEY_ENV = "LANGSMITH_API_KEY"
DATASET_ENV = "ACCORD_LANGSMITH_DATASET"
DEFAULT_DATASET = "accord-feedback"
_IDS = uuid.UUID("6f1d3c2e-9a47-4c1b-8f0e-acc0cd0feed0")
"""The namespace of examples' ids (``uuid5`` of a label's id)."""


class LangSmithNotConfigured(AccordError):
    """An export was asked for without ``LANGSMITH_API_KEY``."""


def configured() -> bool:
    return bool((os.environ.get(KEY_ENV) or "").strip())


def dataset_name() -> str:
    return (os.environ.get(DATASET_ENV) or "").strip() or DEFAULT_DATASET


@dataclass(frozen=True)
class Exported:
    """What an export sent."""

    dataset: str
    """The dataset's name."""
    dataset_id: str
    """Its id in LangSmith."""
    examples: int
    """How many labels were sent."""


def example(label: Mapping[str, Any], thread: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One LangSmith example from a feedback row (``ConsoleStore.feedback``) and what the
    thread asked and answered (``request``, ``reply``), when known."""
    thread = thread or {}
    inputs = {"thread_id": label["thread_id"], "step": label.get("step"),
              "request": thread.get("request")}
    outputs = {"label": label["label"], "note": label.get("note"), "reply": thread.get("reply")}
    return {"id": str(uuid.uuid5(_IDS, str(label["id"]))),
            "inputs": {k: v for k, v in inputs.items() if v is not None},
            "reference_outputs": {k: v for k, v in outputs.items() if v is not None},
            "metadata": {"labelled_by": label.get("user"), "labelled_at": label.get("at"),
                         "source": "accord-console"}}


def export(labels: Sequence[Mapping[str, Any]],
           threads: Mapping[str, Mapping[str, Any]] | None = None, *,
           client: Any = None, name: str | None = None) -> Exported:
    """Send ``labels`` to the dataset (blocking I/O); raises :class:`LangSmithNotConfigured`
    without a key."""
    if client is None:
        if not configured():
            raise LangSmithNotConfigured(f"set {KEY_ENV} to export feedback to LangSmith")
        from langsmith import Client

        client = Client()
    name = name or dataset_name()
    if client.has_dataset(dataset_name=name):
        dataset = client.read_dataset(dataset_name=name)
    else:
        dataset = client.create_dataset(name, description="Feedback labels from accord's console")
    rows = [example(label, (threads or {}).get(label["thread_id"])) for label in labels]
    if rows:
        client.create_examples(dataset_id=dataset.id, examples=rows)
    return Exported(name, str(dataset.id), len(rows))


__all__ = ["DATASET_ENV", "Exported", "LangSmithNotConfigured", "configured", "dataset_name",
           "example", "export"]
