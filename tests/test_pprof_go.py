"""Real clients: ``go tool pprof`` reads the live endpoints of a standalone server.

Needs Go (Debian: apt-get install golang-go). Skipped without it, except under CI, where a
missing Go fails the run.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapprof.pprof import PprofServer, serve
from tests._helpers import require

UNITS = {
    "": 1,
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "B": 1,
    "kB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
}


@pytest.fixture(scope="module")
def go() -> str:
    return require("go", "golang-go")


def swapprof_go_busy_leaf(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(300))


def swapprof_go_hold_memory() -> list[bytearray]:
    return [bytearray(64 * 1024) for _ in range(160)]  # 10 MiB


def swapprof_go_keep_allocating(stop: threading.Event, into: list[bytes]) -> None:
    while not stop.wait(0.002):
        into.append(bytes(8192))


async def swapprof_go_waiting_task(done: asyncio.Event) -> None:
    await done.wait()


@pytest.fixture(scope="module")
def live(go: str) -> Iterator[PprofServer]:
    """A standalone server, a thread that keeps allocating and an event loop with a waiting task."""
    stop, grown = threading.Event(), []  # type: ignore[var-annotated]
    server = serve(max_seconds=10)
    loop = asyncio.new_event_loop()
    done = asyncio.Event()
    threads = [
        threading.Thread(target=swapprof_go_keep_allocating, args=(stop, grown), name="allocator"),
        threading.Thread(target=lambda: loop.run_until_complete(swapprof_go_waiting_task(done)), name="loop"),
    ]
    for thread in threads:
        thread.start()
    try:
        yield server
    finally:
        stop.set()
        loop.call_soon_threadsafe(done.set)
        for thread in threads:
            thread.join()
        loop.close()
        server.stop()


@pytest.fixture
def busy() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=swapprof_go_busy_leaf, args=(stop,), name="busy")
    thread.start()
    yield
    stop.set()
    thread.join()


def pprof(go: str, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "HOME": str(tmp_path), "PPROF_TMPDIR": str(tmp_path), "PPROF_NO_BROWSER": "1"}
    env.pop("http_proxy", None)
    env.pop("HTTP_PROXY", None)
    done = subprocess.run([go, "tool", "pprof", *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def top_rows(output: str) -> dict[str, tuple[float, float]]:
    """``-top`` rows: function -> (flat, cum) in base units."""
    rows: dict[str, tuple[float, float]] = {}
    pattern = re.compile(
        r"^\s*([-\d.]+)([a-zA-Zµ]*)\s+[-\d.]+%\s+[-\d.]+%\s+([-\d.]+)([a-zA-Zµ]*)\s+[-\d.]+%\s+(.+)$"
    )
    for line in output.splitlines():
        match = pattern.match(line)
        if match:
            flat = float(match[1]) * UNITS[match[2]]
            rows[match[5].strip()] = (flat, float(match[3]) * UNITS[match[4]])
    return rows


def test_cpu_profile_in_go_tool_pprof(go: str, live: PprofServer, busy: None, tmp_path: Path) -> None:
    output = pprof(go, tmp_path, "-top", "-seconds", "1", live.url + "profile")
    assert "Type: cpu" in output
    rows = top_rows(output)
    _flat, cum = rows["swapprof_go_busy_leaf"]
    total = sum(f for f, _c in rows.values())
    assert cum > 0.3 * total, output  # the only busy thread dominates the CPU
    raw = pprof(go, tmp_path, "-raw", "-seconds", "1", live.url + "profile")
    assert "samples/count cpu/nanoseconds" in raw and "thread_name:[busy]" in raw


def test_heap_profile_in_go_tool_pprof(go: str, tmp_path: Path) -> None:
    with serve(tracemalloc=8) as traced:
        held = swapprof_go_hold_memory()
        output = pprof(go, tmp_path, "-top", "-sample_index=inuse_space", traced.url + "heap?gc=1")
        raw = pprof(go, tmp_path, "-raw", traced.url + "heap")
        del held
    rows = top_rows(output)
    assert "swapprof_go_hold_memory.<locals>.<listcomp>" in rows, output
    assert rows["swapprof_go_hold_memory.<locals>.<listcomp>"][0] >= 9e6  # ~10 MiB held
    assert "inuse_objects/count inuse_space/bytes" in raw and "swapprof_go_hold_memory" in raw


def test_allocs_delta_in_go_tool_pprof(go: str, live: PprofServer, tmp_path: Path) -> None:
    output = pprof(go, tmp_path, "-top", "-seconds", "1", live.url + "allocs")
    assert "Type: alloc_space" in output
    rows = top_rows(output)
    assert rows["swapprof_go_keep_allocating"][0] > 0, output


def test_goroutine_profile_in_go_tool_pprof(go: str, live: PprofServer, busy: None, tmp_path: Path) -> None:
    raw = pprof(go, tmp_path, "-raw", live.url + "goroutine")
    assert "goroutine/count" in raw
    for name in ("swapprof_go_busy_leaf", "swapprof_go_keep_allocating", "swapprof_go_waiting_task"):
        assert name in raw
    assert "kind:[asyncio_task]" in raw and "thread_name:[allocator]" in raw


@pytest.mark.parametrize("name", ["block", "mutex", "threadcreate"])
def test_empty_profiles_are_valid(go: str, live: PprofServer, tmp_path: Path, name: str) -> None:
    raw = pprof(go, tmp_path, "-raw", live.url + name)
    assert "Samples:" in raw


def test_errors_reach_go_tool_pprof(go: str, live: PprofServer, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "PPROF_TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [go, "tool", "pprof", "-raw", "-seconds", "60", live.url + "profile"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0
    assert "exceeds the server's maximum of 10 seconds" in done.stderr
