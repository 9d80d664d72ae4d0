"""Profiles for code that wants them without HTTP: the same collectors the endpoints use."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from swapprof._errors import ConfigError
from swapprof.pprof import _cpu, _heap, _threads
from swapprof.pprof._decode import decode
from swapprof.pprof._model import Profile
from swapprof.pprof._proto import encode


def _waiter(stop: threading.Event | None) -> Callable[[float], bool]:
    event = stop or threading.Event()
    return lambda seconds: not event.wait(seconds)


def _positive(seconds: float) -> float:
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"seconds={seconds!r} must be a positive number")
    return seconds


def cpu_profile(
    seconds: float,
    *,
    hz: int = _cpu.DEFAULT_HZ,
    mode: str = "cpu",
    backend: str = "sampler",
    pid: int | None = None,
    native: bool = True,
    stop: threading.Event | None = None,
) -> Profile:
    """Profile this process for ``seconds`` (``stop`` ends it early; the partial profile returns).

    ``mode``: "cpu" (threads weighed by their own CPU time) or "wall" (every thread counts).
    ``backend``: "sampler" (in-process thread) or "py-spy" (native frames, children too; ``pid``
    picks another process). Raises ``ProfilingInUseError`` while another CPU profile runs.
    """
    _positive(seconds)
    if backend == "py-spy":
        from swapprof.pprof._pyspy import record

        return record(math.ceil(seconds), _waiter(stop), hz=hz, mode=mode, pid=pid, native=native)
    if backend != "sampler":
        raise ConfigError(f"unknown backend {backend!r}; use 'sampler' or 'py-spy'")
    if pid is not None:
        raise ConfigError("pid needs backend='py-spy'; the sampler profiles its own process")
    return _cpu.sample(seconds, _waiter(stop), hz=hz, mode=mode)


def heap_profile(
    *,
    name: str = "heap",
    gc: bool = False,
    seconds: float | None = None,
    frames: int = _heap.DEFAULT_FRAMES,
    stop: threading.Event | None = None,
) -> Profile:
    """tracemalloc's live allocations, or with ``seconds`` the delta over that window.

    ``name`` is "heap" or "allocs" (the default sample type differs). Without ``seconds`` it
    raises ``ProfilerUnavailableError`` when tracemalloc is off; the delta turns it on for the
    window (``frames`` deep) and off again.
    """
    if name not in ("heap", "allocs"):
        raise ConfigError(f"name={name!r} must be 'heap' or 'allocs'")
    if seconds is None:
        return _heap.heap(name, collect=gc)
    return _heap.heap_delta(_positive(seconds), _waiter(stop), name, collect=gc, frames=frames)


def goroutine_profile() -> Profile:
    """Every thread and pending asyncio task as a ``goroutine/count`` profile."""
    return _threads.goroutine_profile()


def goroutine_dump() -> str:
    """Every thread and asyncio task with its stack, as text (``goroutine?debug=2``)."""
    return _threads.goroutine_dump()


def read_profile(data: bytes) -> Profile:
    """Parse gzipped or plain profile.proto bytes (from swapprof, Go or any pprof producer)."""
    return decode(data)


def encode_profile(profile: Profile) -> bytes:
    """Gzipped profile.proto bytes (what /debug/pprof serves): ``go tool pprof`` reads them."""
    return encode(profile)
