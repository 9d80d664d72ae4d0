"""Small process helpers shared by the CLI, the demo and the benchmarks."""

from __future__ import annotations

import os
import time


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def children(pid: int | None = None) -> set[int]:
    """The children of ``pid`` (default: this process), zombies among them, from every thread's
    ``/proc/PID/task/TID/children``; empty when the process is gone."""
    proc = f"/proc/{pid if pid is not None else 'self'}/task"
    found: set[int] = set()
    try:
        tasks = os.listdir(proc)
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"{proc}/{task}/children") as fh:
                found.update(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            continue
    return found


def wait_pid_gone(pid: int, timeout: float, poll: float = 0.02) -> bool:
    """Poll until ``pid`` is gone (or a zombie); False if it still runs at the deadline."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def wait_file(path: str | os.PathLike[str], timeout: float, poll: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True
