"""A chaos drill's worker: one process that runs thread steps through the engine, one at a time.

``python -P -m accord.testing.chaos_worker GRAPH DB_URL`` reads one JSON job a line on stdin
(``{"id": 1, "thread": "c-0001", "op": "run" | "approve" | "continue" | "garble",
"message": "..."}``) and answers one JSON line on stdout with how the step left the thread
(``status``: ``done``, ``interrupted``, ``failed``, or ``refused`` / ``error`` with the error's
line). The drill SIGKILLs workers at random points and sends the thread on to another one.
Each step runs as `accord resume`/`accord run` would: ``accord.engine.session.Session``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from accord.engine.session import Session
from accord.errors import AccordError

GARBLED = {"decision": "approve-ish", "args": "not an object", "by": 7}
"""A corrupt resume value: the engine must ask again, never act on it."""


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


async def _step(session: Session, graph: str, job: dict[str, Any]) -> dict[str, Any]:
    thread, op = job["thread"], job["op"]
    quiet = lambda node, update: None  # noqa: E731 - the drill shows progress, not steps
    try:
        if op == "run":
            outcome = await session.run(graph, job["message"], thread, quiet)
        elif op == "approve":
            outcome = await session.resume(thread, {"decision": "approve", "by": "chaos"}, quiet)
        elif op == "garble":
            outcome = await session.resume(thread, GARBLED, quiet)
        else:
            outcome = await session.resume(thread, None, quiet)
    except AccordError as exc:
        return {"status": "refused", "error": _line(exc)}
    except Exception as exc:  # noqa: BLE001 - a database dropped under the step, a fault
        return {"status": "error", "error": _line(exc)}
    return {"status": outcome.status, "error": outcome.error,
            "asked_again": bool((outcome.interrupt or {}).get("error")),
            "fallbacks": len(outcome.fallbacks)}


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
