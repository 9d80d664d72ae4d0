"""Facts about the machine and the software a bench ran on, and /proc readings of processes."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

DISTRIBUTIONS = ("swapprof", "uvicorn", "h11", "httptools", "gunicorn", "opentelemetry-sdk")


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _git_commit() -> str | None:
    """The commit of the working directory's checkout (CI: the build being measured)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if done.returncode == 0:
            return done.stdout.strip() or None
    return None


def machine(distributions: tuple[str, ...] = DISTRIBUTIONS) -> dict[str, Any]:
    """Python, platform, CPUs, load, versions of ``distributions``, git commit, time (UTC)."""
    versions: dict[str, str | None] = {}
    for dist in distributions:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg": loadavg(),
        "versions": versions,
        "git_commit": _git_commit(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# -- /proc -----------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (by parent pid), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat_fields(int(entry)) if entry.isdigit() else None
        if fields and len(fields) > 1 and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(sorted(children.get(current, [])))
    return found


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        fields = _stat_fields(int(entry)) if entry.isdigit() else None
        if fields and len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == pgid:
            members.append(int(entry))
    return members


def fds_and_rss(pids: list[int]) -> dict[str, Any]:
    """Open fds and resident memory summed over ``pids`` (processes that vanished count 0)."""
    fds, rss_kb, seen = 0, 0, []
    for pid in pids:
        try:
            count = len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/status") as fh:
                rss = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError):
            continue
        fds, rss_kb = fds + count, rss_kb + rss
        seen.append(pid)
    return {"pids": seen, "fds": fds if seen else None, "rss_kb": rss_kb if seen else None}
