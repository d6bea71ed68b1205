"""A fork server for `accord` CLI processes: import once, then fork one real process per command.

Starting the `accord` console script costs ~1.5 s of imports; the durability tests start
hundreds of processes. This server imports `accord.cli.main` once and instruments it
(`crashpoints.install()`), then for each request forks children that each set their own
environment, arm their own crash point, redirect stdout/stderr to files and run
``accord.cli.main.main()`` with their argv: a separate process with its own connections,
locks and event loop, exactly what the console script would run, killable with SIGKILL.

Protocol: one JSON object per line on stdin::

    {"jobs": [{"argv": [...], "env": {...}, "crash_at": "refund:after@1" | null,
               "log": path | null, "out": path, "err": path}, ...],
     "together": bool}

``together`` holds every child of the request at a barrier until all are forked, then releases
them at once (concurrent writers). The reply is one JSON line ``{"codes": [...]}`` with each
child's exit code, or minus the signal that killed it (``-9`` for SIGKILL).

Run as ``python -P tests/durability/zygote.py``; pytest never imports this file.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crashpoints

import accord.cli.main as cli
import accord.graphs.support  # noqa: F401  - imported here, not in every child
from accord.graphs.catalog import load_workflow

load_workflow("support")  # warm every lazy import the build does
crashpoints.install()


def child(job: dict, gate: int | None) -> None:
    """Runs in the forked process; never returns."""
    code = 70
    try:
        for fd, path in ((1, job["out"]), (2, job["err"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        os.environ.update(job.get("env") or {})
        crashpoints.arm(job.get("crash_at"), job.get("log"))
        if gate is not None:
            os.read(gate, 1)  # blocks until the server closes the write end: all start at once
        sys.argv = ["accord", *job["argv"]]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - report, never fall back into the server loop
        os.write(2, f"zygote child: {type(exc).__name__}: {exc}\n".encode())
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        gate_r, gate_w = os.pipe() if request.get("together") else (None, None)
        sys.stdout.flush()
        sys.stderr.flush()
        pids = []
        for job in request["jobs"]:
            pid = os.fork()
            if pid == 0:
                if gate_w is not None:
                    os.close(gate_w)
                child(job, gate_r)
            pids.append(pid)
        if gate_r is not None:
            os.close(gate_r)
            os.close(gate_w)  # EOF for every child at once
        codes = []
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            codes.append(os.waitstatus_to_exitcode(status))
        reply.write(json.dumps({"codes": codes}) + "\n")


if __name__ == "__main__":
    serve()
