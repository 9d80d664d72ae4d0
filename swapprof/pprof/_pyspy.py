"""The ``py-spy`` backend: ``py-spy record --format speedscope`` on this process (and its
children), mapped into the same CPU profile the sampler writes, with native frames.

py-spy reads the target's memory with ptrace; it needs root or CAP_SYS_PTRACE (containers:
``--cap-add SYS_PTRACE``) when Yama's ptrace_scope is 1 or more.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swapprof.pprof._cpu import acquire, check, release
from swapprof.pprof._errors import ProfileError, ProfilerUnavailableError
from swapprof.pprof._model import Frame, Profile

INSTALL = "python -m pip install 'swapprof[pyspy]'   (or: python -m pip install 'py-spy>=0.3.14')"
STARTUP_GRACE_S = 30.0
_NAME = re.compile(r'^Process (\d+) Thread (\d+)(?: "(.*)")?')
_PSEUDO = re.compile(r"^(process \d+:|thread \()")


def find_pyspy() -> str:
    """The py-spy executable next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("py-spy")
    if not found:
        raise ProfilerUnavailableError(f"the py-spy backend needs py-spy, which is not installed: {INSTALL}")
    return found


def command(exe: str, out: str, seconds: int, hz: int, pid: int, mode: str, native: bool) -> list[str]:
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(hz)]
    cmd += ["--format", "speedscope", "--output", out, "--full-filenames", "--subprocesses"]
    cmd.append("--native" if native else "--nonblocking")  # py-spy refuses both together
    return [*cmd, "--idle"] if mode == "wall" else cmd


def record(
    seconds: int,
    wait: Callable[[float], bool],
    *,
    hz: int = 100,
    mode: str = "cpu",
    pid: int | None = None,
    native: bool = True,
) -> Profile:
    """Run py-spy for ``seconds``; stop it early when ``wait`` reports the caller gone."""
    check(hz, mode)
    exe = find_pyspy()
    acquire()
    try:
        with tempfile.TemporaryDirectory(prefix="swapprof-pyspy-") as tmp:
            out, log = os.path.join(tmp, "profile.json"), os.path.join(tmp, "stderr")
            started, wall = time.perf_counter_ns(), time.time_ns()
            cmd = command(exe, out, seconds, hz, pid or os.getpid(), mode, native)
            with open(log, "wb") as err:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            try:
                deadline = time.monotonic() + seconds + STARTUP_GRACE_S
                while proc.poll() is None:
                    if not wait(0.2) or time.monotonic() > deadline:
                        proc.send_signal(signal.SIGINT)
                        break
                proc.wait(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            text = Path(log).read_text(errors="replace").strip()
            if proc.returncode != 0 or not os.path.exists(out):
                raise _failure(proc.returncode, text)
            data = json.loads(Path(out).read_text())
    finally:
        release()
    profile = convert(data, hz, mode)
    profile.time_nanos, profile.duration_nanos = wall, time.perf_counter_ns() - started
    return profile


def _failure(code: int | None, text: str) -> ProfileError:
    tail = text.splitlines()[-3:]
    detail = " | ".join(tail) or f"exit status {code}"
    if "ermission" in text or "not permitted" in text:
        return ProfilerUnavailableError(
            f"py-spy may not trace this process ({detail}): run as root or grant CAP_SYS_PTRACE "
            "(docker: --cap-add SYS_PTRACE), or set kernel.yama.ptrace_scope=0"
        )
    return ProfileError(f"py-spy failed: {detail}")


def convert(data: dict[str, Any], hz: int, mode: str) -> Profile:
    """Speedscope JSON from py-spy (one sampled profile per process and thread) to a Profile."""
    kind = "wall" if mode == "wall" else "cpu"
    profile = Profile([("samples", "count"), (kind, "nanoseconds")], (kind, "nanoseconds"), 10**9 // hz)
    profile.comments.append(f"py-spy {data.get('exporter', '')} mode={mode} hz={hz}".replace("  ", " "))
    frames: list[Frame | None] = []
    for item in data.get("shared", {}).get("frames", []):
        name, filename = str(item.get("name", "")), str(item.get("file") or "")
        pseudo = not filename and _PSEUDO.match(name)
        frames.append(None if pseudo else (name, filename, 0, int(item.get("line") or 0)))
    for entry in data.get("profiles", []):
        match = _NAME.match(str(entry.get("name", "")))
        labels: tuple[tuple[str, str], ...] = ()
        if match:
            labels = (("pid", match[1]), ("thread_id", match[2]), ("thread_name", match[3] or ""))
        for indexes, weight in zip(entry.get("samples", []), entry.get("weights", []), strict=False):
            stack = tuple(f for f in (frames[i] for i in reversed(indexes)) if f is not None)
            nanos = round(float(weight) * 1e9)
            if nanos > 0:
                profile.add(stack, [max(1, round(float(weight) * hz)), nanos], labels)
    return profile
