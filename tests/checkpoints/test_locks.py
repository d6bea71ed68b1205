"""thread_lock: one writer per thread, across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from accord.checkpoints import ThreadBusy, athread_lock, thread_lock
from accord.checkpoints.locks import advisory_key

_HOLDER = textwrap.dedent(
    """
    import sys
    from accord.checkpoints import thread_lock
    with thread_lock(sys.argv[1], sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


def _hold_in_other_process(url: str, thread_id: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", _HOLDER, url, thread_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_excludes_another_process(durable_url, thread_id):
    holder = _hold_in_other_process(durable_url, thread_id)
    try:
        with pytest.raises(ThreadBusy) as err, thread_lock(durable_url, thread_id):
            pass
        assert thread_id in str(err.value) and err.value.thread_id == thread_id
        start = time.monotonic()
        with pytest.raises(ThreadBusy), thread_lock(durable_url, thread_id, wait=0.3):
            pass
        assert time.monotonic() - start >= 0.3
        with thread_lock(durable_url, f"{thread_id}-other"):
            pass  # other threads stay free
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    with thread_lock(durable_url, thread_id):
        pass  # released when the holder exits the block


def test_lock_waits_for_release(durable_url, thread_id):
    holder = _hold_in_other_process(durable_url, thread_id)

    def release() -> None:
        holder.stdin.write("\n")
        holder.stdin.flush()

    releaser = threading.Timer(0.5, release)
    releaser.start()
    try:
        with thread_lock(durable_url, thread_id, wait=20):
            pass
    finally:
        releaser.join()
        holder.communicate(timeout=30)


async def test_async_lock_excludes_sync_holder(durable_url, thread_id):
    holder = _hold_in_other_process(durable_url, thread_id)
    try:
        with pytest.raises(ThreadBusy):
            async with athread_lock(durable_url, thread_id, wait=0.1):
                pass
    finally:
        holder.communicate("\n", timeout=30)
    async with athread_lock(durable_url, thread_id):
        with pytest.raises(ThreadBusy), thread_lock(durable_url, thread_id):
            pass


def test_lock_released_on_error(db_url, thread_id):
    with pytest.raises(ZeroDivisionError), thread_lock(db_url, thread_id):
        raise ZeroDivisionError
    with (
        thread_lock(db_url, thread_id),
        pytest.raises(ThreadBusy),
        thread_lock(db_url, thread_id),
    ):
        pass


def test_advisory_key_is_stable_across_processes():
    out = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            "from accord.checkpoints.locks import advisory_key; print(advisory_key('thread-1'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(out) == advisory_key("thread-1")
    assert -(2**63) <= advisory_key("x") < 2**63
