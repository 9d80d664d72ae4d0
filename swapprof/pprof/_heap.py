"""Heap and allocation profiles from tracemalloc.

``heap``/``allocs`` without ``seconds``: the live allocations (inuse_objects, inuse_space).
With ``seconds``: a delta over the window with Go's four sample types, alloc_* counting what
was allocated and still held at the end of the window, inuse_* the net change (may be negative).
A delta starts tracemalloc for the window when it is off, and stops it afterwards.
"""

from __future__ import annotations

import gc as _gc
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from swapprof.pprof._errors import ProfilerUnavailableError
from swapprof.pprof._model import Frame, Profile, Stack
from swapprof.pprof._source import SourceNames

DEFAULT_FRAMES = 32
OFF_HINT = (
    "tracemalloc is not tracing, so there is no heap profile. Turn it on: set SWAPPROF_TRACEMALLOC=1 "
    "(or PYTHONTRACEMALLOC=32) in the environment, pass tracemalloc=32 to asgi_app(), wsgi_app() or "
    "serve(), or call tracemalloc.start(32). A delta profile (?seconds=N) traces for its window."
)
_INUSE = [("inuse_objects", "count"), ("inuse_space", "bytes")]
_ALLOC = [("alloc_objects", "count"), ("alloc_space", "bytes")]
_lock = threading.Lock()
_users = 0
_started = False


def _reset_after_fork() -> None:
    global _lock, _users
    _lock, _users = threading.Lock(), 0  # no delta window runs in the child


os.register_at_fork(after_in_child=_reset_after_fork)


@contextmanager
def tracing(frames: int = DEFAULT_FRAMES) -> Iterator[None]:
    """Make sure tracemalloc traces inside the block; stop it after if this (or a twin) started it."""
    global _users, _started
    with _lock:
        if _users == 0 and not tracemalloc.is_tracing():
            tracemalloc.start(frames)
            _started = True
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _started:
                tracemalloc.stop()
                _started = False


def start_configured(frames: int) -> Callable[[], None]:
    """Trace with ``frames`` frames from now on (0: leave tracemalloc alone).

    Returns the function that undoes it: it stops tracemalloc only if this call started it and no
    delta profile still needs it. Calling it twice is harmless.
    """
    if frames <= 0:
        return lambda: None
    window = tracing(frames)
    window.__enter__()
    ended = threading.Event()

    def stop() -> None:
        if not ended.is_set():
            ended.set()
            window.__exit__(None, None, None)

    return stop


_Raw = tuple[tuple[str, int], ...]  # tracemalloc's own traceback: (filename, line), newest first


def _grouped(snapshot: tracemalloc.Snapshot) -> dict[_Raw, list[int]]:
    """Blocks grouped by traceback: raw traceback -> [count, size], tracemalloc's own left out.

    Works on the snapshot's raw trace tuples and allocates almost nothing per trace: while
    tracemalloc traces, each of our own allocations costs microseconds, and a big heap has
    millions of traces (``Snapshot.statistics`` builds objects for each one).
    """
    raw = getattr(snapshot.traces, "_traces", None)
    if raw is None:  # pragma: no cover - another Python's tracemalloc
        raw = [
            (0, t.size, tuple((f.filename, f.lineno) for f in reversed(t.traceback))) for t in snapshot.traces
        ]
    sizes: dict[_Raw, list[int]] = {}
    for trace in raw:
        found = sizes.get(trace[2])
        if found is None:
            sizes[trace[2]] = [trace[1]]
        else:
            found.append(trace[1])
    own = tracemalloc.__file__
    return {tb: [len(v), sum(v)] for tb, v in sizes.items() if not tb or tb[0][0] != own}


def _stacks(tracebacks: Iterable[_Raw]) -> Iterator[Stack]:
    """Named stacks (leaf first) for raw tracebacks; frames are named oldest call first."""
    names = SourceNames()
    for traceback in tracebacks:
        frames: list[Frame] = []
        caller_file, scope = "", None
        for filename, line in reversed(traceback):
            frame, scope = names.frame(filename, line, caller_file, scope)
            frames.append(frame)
            caller_file = filename
        frames.reverse()
        yield tuple(frames)


def _take(collect: bool) -> tracemalloc.Snapshot:
    if collect:
        _gc.collect()
    return tracemalloc.take_snapshot()


def heap(name: str = "heap", *, collect: bool = False) -> Profile:
    """The live allocations tracemalloc knows of; ``ProfilerUnavailableError`` when it is off."""
    if not tracemalloc.is_tracing():
        raise ProfilerUnavailableError(OFF_HINT)
    snapshot = _take(collect)
    profile = Profile(list(_INUSE), ("space", "bytes"), 1, "inuse_space", time_nanos=time.time_ns())
    groups = _grouped(snapshot)
    for stack, values in zip(_stacks(groups), groups.values(), strict=True):
        profile.add(stack, values)
    profile.comments.append(f"tracemalloc {name}: live blocks, {snapshot.traceback_limit} frames deep")
    if name == "allocs":
        profile.comments.append("tracemalloc forgets freed blocks: allocs without ?seconds= shows live ones")
    return profile


def heap_delta(
    seconds: float,
    wait: Callable[[float], bool],
    name: str = "heap",
    *,
    collect: bool = False,
    frames: int = DEFAULT_FRAMES,
) -> Profile:
    """What ``seconds`` allocated and still held, Go's ``<name>?seconds=N`` delta profile.

    The snapshots are compared before any frame is named, so only changed stacks cost time.
    """
    started = time.perf_counter_ns()
    with tracing(frames):
        before = _take(collect)
        wait(seconds)
        after = _take(collect)
    changes = _grouped(after)
    for frames_, (count, size) in _grouped(before).items():
        entry = changes.setdefault(frames_, [0, 0])
        entry[0] -= count
        entry[1] -= size
    changes = {k: v for k, v in changes.items() if v[0] or v[1]}
    profile = Profile(_ALLOC + _INUSE, ("space", "bytes"), 1, time_nanos=time.time_ns())
    profile.default_sample_type = "alloc_space" if name == "allocs" else "inuse_space"
    profile.duration_nanos = time.perf_counter_ns() - started
    profile.comments.append(
        f"tracemalloc {name}-delta over {seconds:g} s, {after.traceback_limit} frames deep"
    )
    for stack, (count, size) in zip(_stacks(changes), changes.values(), strict=True):
        profile.add(stack, [max(count, 0), max(size, 0), count, size])
    return profile
