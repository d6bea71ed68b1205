"""A chaos drill's worker: one process that runs thread steps through the engine, one at a time.

``python -P -m accord.testing.chaos_worker GRAPH DB_URL`` reads one JSON job a line on stdin
(``{"id": 1, "thread": "c-0001", "op": "run" | "approve" | "continue" | "garble" | "retry",
"message": "...", "damage": null | "truncated" | ...}``) and answers one JSON line on
stdout with how the step left the thread (``status``: ``done``, ``interrupted``, ``failed``, or
``refused`` / ``error`` with the error's line; a failed thread's open dead letter as
``letter``). Each step runs as the CLI would, through ``accord.engine.session.Session``:
``run``/``approve``/``continue`` as `accord run`/`accord resume`, ``retry`` as `accord dlq
retry` of the thread's dead letter (which re-enters from the newest checkpoint that reads back
when the letter's own was damaged), or, with no letter, as `accord replay` from that checkpoint.

A job with ``damage`` corrupts every handoff envelope its step stores (:data:`DAMAGES`), as a
faulty serializer or a hand edit would: the recipient must refuse it (a dead letter), never run
on it. The drill SIGKILLs workers at random points and sends the thread on to another one.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from accord.checkpoints.letters import LetterStatus
from accord.engine.session import Session
from accord.errors import AccordError
from accord.graphs.handoffs import HandoffIssuer
from accord.resilience import deadletters
from accord.resilience.envelope import HANDOFFS_FIELD

GARBLED = {"decision": "approve-ish", "args": "not an object", "by": 7}
"""A corrupt resume value: the engine must ask again, never act on it."""


def _truncated(stored: dict[str, Any]) -> Any:
    text = json.dumps(stored)
    return text[: len(text) // 2]


DAMAGES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "truncated": _truncated,  # cut off mid-value: text, not an envelope
    "payload": lambda e: {**e, "payload": ["\x00", 7]},  # a field of the wrong shape
    "version": lambda e: {**e, "schema_version": 99},  # a schema accord does not read
    "misaddressed": lambda e: {**e, "recipient": "nobody"},  # meant for another agent
}
"""How a damaged step corrupts the envelopes it stores."""


@contextmanager
def damaged_handoffs(how: str | None) -> Iterator[list[str]]:
    """While open, every envelope a transition stores is corrupted ``how``; yields the
    recipients whose envelopes were."""
    hit: list[str] = []
    if how is None:
        yield hit
        return
    damage, attach = DAMAGES[how], HandoffIssuer.attach

    def corrupting(issuer: HandoffIssuer, sender: str, targets: Any, state: Any,
                   update: dict[str, Any]) -> None:
        attach(issuer, sender, targets, state, update)
        for record in (update.get("tasks") or {}).values():
            envelopes = record.get(HANDOFFS_FIELD) or {}
            for recipient, stored in envelopes.items():
                envelopes[recipient] = damage(stored)
                hit.append(recipient)

    HandoffIssuer.attach = corrupting  # type: ignore[method-assign]
    try:
        yield hit
    finally:
        HandoffIssuer.attach = attach  # type: ignore[method-assign]


async def _open_letter(session: Session, thread: str) -> str | None:
    """The thread's newest dead letter still to be dealt with."""
    found = await session.saver._offload(deadletters.letters, session.saver,
                                         status=LetterStatus.DEAD, thread_id=thread)
    return found[0].id if found else None


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


async def _step(session: Session, graph: str, job: dict[str, Any]) -> dict[str, Any]:
    thread, op = job["thread"], job["op"]
    quiet = lambda node, update: None  # noqa: E731 - the drill shows progress, not steps
    try:
        with damaged_handoffs(job.get("damage")) as damaged:
            if op == "run":
                outcome = await session.run(graph, job["message"], thread, quiet)
            elif op == "approve":
                outcome = await session.resume(thread, {"decision": "approve", "by": "chaos"},
                                               quiet)
            elif op == "garble":
                outcome = await session.resume(thread, GARBLED, quiet)
            elif op == "retry":
                letter = await _open_letter(session, thread)
                if letter is not None:
                    outcome = await session.retry_letter(letter, quiet)
                else:  # nothing recorded the failure: on from the newest intact checkpoint
                    outcome = await session.replay(thread, await session.newest_intact(thread),
                                                   quiet)
            else:
                outcome = await session.resume(thread, None, quiet)
        letter = await _open_letter(session, thread) if outcome.status == "failed" else None
    except AccordError as exc:
        return {"status": "refused", "error": _line(exc)}
    except Exception as exc:  # noqa: BLE001 - a database dropped under the step, a fault
        return {"status": "error", "error": _line(exc)}
    return {"status": outcome.status, "error": outcome.error,
            "asked_again": bool((outcome.interrupt or {}).get("error")),
            "fallbacks": len(outcome.fallbacks), "damaged": len(damaged), "letter": letter}


async def serve(graph: str, url: str) -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the replies
    loop = asyncio.get_running_loop()
    async with Session.open(url) as session:
        session.graph(graph)
        reply.write(json.dumps({"ready": os.getpid()}) + "\n")
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            job = json.loads(line)
            answer = await _step(session, graph, job)
            reply.write(json.dumps({"id": job["id"], **answer}) + "\n")


def main() -> None:
    graph, url = sys.argv[1], sys.argv[2]
    asyncio.run(serve(graph, url))


if __name__ == "__main__":
    main()
