"""Stopping a server we started in its own session: the whole process group, then the rest.

A server may replace its main process (gunicorn's USR2 forks a new master that outlives the
one we started); every process it forks stays in the process group, so signalling the group
reaches them all. Processes named explicitly (``extra``) are signalled too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence

from swapprof._process import pid_alive
from swapprof.gate._machine import group_members

GRACE_S = 30.0


def _signal_all(pgid: int, pids: Sequence[int], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _remaining(pgid: int, pids: Sequence[int]) -> list[int]:
    return sorted(set(group_members(pgid)) | {p for p in pids if pid_alive(p)})


def stop_group(
    proc: subprocess.Popen[bytes],
    extra: Sequence[int] = (),
    signum: int = signal.SIGTERM,
    grace: float = GRACE_S,
) -> None:
    """``signum`` to the group and ``extra``; SIGKILL what still runs after ``grace``; reap."""
    pgid = proc.pid
    _signal_all(pgid, extra, signum)
    deadline = time.monotonic() + grace
    while _remaining(pgid, extra) and time.monotonic() < deadline:
        proc.poll()
        time.sleep(0.02)
    left = _remaining(pgid, extra)
    if left:
        _signal_all(pgid, left, signal.SIGKILL)
    proc.wait()
    for pid in extra:  # orphans re-parented to us when we are a child subreaper
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
