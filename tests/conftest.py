"""Test-wide guards: no child process left behind, no global hook left changed.

The test process makes itself a child subreaper, so generations orphaned by a killed master
are re-parented to it and a leak is seen instead of vanishing into init.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator

import pytest

PR_SET_CHILD_SUBREAPER = 36
WATCHED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
    signal.SIGPIPE,
)
CHILD_EXIT_DEADLINE_S = 15.0


def pytest_configure(config: pytest.Config) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children() -> dict[int, str]:
    """Direct children of this process: pid -> state letter (Z = zombie)."""
    me = os.getpid()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == me:
            found[int(entry)] = fields[0]
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


@pytest.fixture(autouse=True)
def no_leaked_children_or_hooks() -> Iterator[None]:
    handlers = {s: signal.getsignal(s) for s in WATCHED_SIGNALS}
    callbacks = list(gc.callbacks)
    tracing = tracemalloc.is_tracing()
    before = set(_children())
    yield
    problems = []
    deadline = time.monotonic() + CHILD_EXIT_DEADLINE_S
    while True:
        alive = {pid: st for pid, st in _children().items() if st != "Z" and pid not in before}
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid, state in _children().items():
        if state == "Z":  # orphans re-parented to us, or children nobody waited for
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
    if alive:
        problems.append("child processes left running: " + "; ".join(f"{p} {_cmdline(p)}" for p in alive))
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    changed = [signal.Signals(s).name for s, h in handlers.items() if signal.getsignal(s) != h]
    if changed:
        problems.append(f"signal handlers changed: {changed}")
        for s, h in handlers.items():
            signal.signal(s, h)
    if list(gc.callbacks) != callbacks:
        problems.append("gc.callbacks changed")
        gc.callbacks[:] = callbacks
    if tracemalloc.is_tracing() != tracing:
        problems.append("tracemalloc state changed")
        (tracemalloc.start if tracing else tracemalloc.stop)()
    if problems:
        pytest.fail("; ".join(problems))
