"""The CPU sampler: a thread that reads ``sys._current_frames()`` at a fixed rate.

Each tick, every other thread's stack is weighed by the CPU time that thread used since the
previous tick, read from its own CPU clock (Linux: the per-thread clock id of its native id), so
sleeping or blocked threads add nothing. In ``wall`` mode every thread counts the wall time of
the tick. Only one CPU profile runs at a time per process (``ProfilingInUseError``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

from swapprof._errors import ConfigError
from swapprof.pprof._errors import ProfilingInUseError
from swapprof.pprof._frames import CodeNames, raw_stack
from swapprof.pprof._model import Profile

DEFAULT_HZ = 100
MAX_HZ = 10_000
MODES = ("cpu", "wall")
MAX_PAUSE_S = 0.05
_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def acquire() -> None:
    """Take the process-wide CPU profiling slot, or raise ``ProfilingInUseError``."""
    if not _lock.acquire(blocking=False):
        raise ProfilingInUseError("cpu profiling already in use")


def release() -> None:
    _lock.release()


def in_use() -> bool:
    return _lock.locked()


def thread_cpu_ns(native_id: int) -> int | None:
    """CPU time of a thread of this process, or None when it has exited.

    Linux encodes a thread's CPU clock as ``(~tid << 3) | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED``
    (what pthread_getcpuclockid computes); an exited tid answers EINVAL instead of crashing.
    """
    try:
        return time.clock_gettime_ns(((~native_id) << 3) | 6)
    except OSError:
        return None


def check(hz: int, mode: str) -> None:
    if not 1 <= hz <= MAX_HZ:
        raise ConfigError(f"sampling rate {hz} Hz is outside 1..{MAX_HZ}")
    if mode not in MODES:
        raise ConfigError(f"unknown profiling mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "cpu" and not sys.platform.startswith("linux"):
        raise ConfigError("mode 'cpu' reads Linux per-thread CPU clocks; use mode 'wall' here")


class Sampler:
    """Start, let run, stop: ``stop()`` returns the profile. Takes the CPU profiling slot."""

    def __init__(self, hz: int = DEFAULT_HZ, mode: str = "cpu") -> None:
        check(hz, mode)
        self.hz, self.mode = hz, mode
        self._halt = threading.Event()
        self._counts: dict[tuple[str, int, tuple[object, ...]], list[int]] = {}
        self._thread = threading.Thread(target=self._run, name="swapprof-cpu-sampler", daemon=True)
        self._started_ns = self._started_wall = self._stopped_ns = 0
        self.cpu_ns = 0  #: CPU time the sampler thread used, known after stop()

    def start(self) -> None:
        acquire()
        self._started_ns, self._started_wall = time.perf_counter_ns(), time.time_ns()
        try:
            self._thread.start()
        except BaseException:
            release()
            raise

    def stop(self) -> Profile:
        """Stop sampling (once; later calls just rebuild the profile) and return the profile."""
        if not self._halt.is_set():
            self._halt.set()
            self._thread.join()
            self._stopped_ns = time.perf_counter_ns()
            release()
        return self._profile(self._stopped_ns - self._started_ns)

    def _run(self) -> None:
        me, wall, interval = threading.get_ident(), self.mode == "wall", 1.0 / self.hz
        counts, last_cpu = self._counts, {}
        for known in threading.enumerate():
            if known.native_id is not None and (start := thread_cpu_ns(known.native_id)) is not None:
                last_cpu[known.native_id] = start
        last_wall = time.perf_counter_ns()
        deadline = time.monotonic() + interval
        while not self._halt.is_set():
            pause = deadline - time.monotonic()
            if pause > 0:
                # A plain sleep: cheaper per tick than Event.wait(timeout); stop() waits <= 50 ms.
                time.sleep(min(pause, MAX_PAUSE_S))
                continue
            now_wall = time.perf_counter_ns()
            wall_ns, last_wall = now_wall - last_wall, now_wall
            threads = {t.ident: t for t in threading.enumerate()}
            current = sys._current_frames()
            for ident, frame in current.items():
                thread = threads.get(ident)
                if ident == me or thread is None or thread.native_id is None:
                    continue  # our own thread, or one threading never saw (no name, no clock)
                tid = thread.native_id
                if wall:
                    weight = wall_ns
                else:
                    cpu = thread_cpu_ns(tid)
                    if cpu is None:
                        continue
                    weight, last_cpu[tid] = cpu - last_cpu.get(tid, 0), cpu
                    if weight <= 0:
                        continue
                key = (thread.name, tid, raw_stack(frame))
                entry = counts.get(key)
                if entry is None:
                    counts[key] = [1, weight]
                else:
                    entry[0] += 1
                    entry[1] += weight
            del current, frame  # do not keep other threads' frames alive until the next tick
            deadline += interval
            if deadline < (late := time.monotonic()):
                deadline = late + interval  # fell behind (GIL held elsewhere): skip, the weights cover it
        self.cpu_ns = time.thread_time_ns()  # what sampling cost, all of it spent holding the GIL

    def _profile(self, duration_ns: int) -> Profile:
        kind = "wall" if self.mode == "wall" else "cpu"
        profile = Profile(
            [("samples", "count"), (kind, "nanoseconds")], (kind, "nanoseconds"), 10**9 // self.hz
        )
        profile.time_nanos, profile.duration_nanos = self._started_wall, duration_ns
        share = 100 * self.cpu_ns / duration_ns if duration_ns else 0.0
        profile.comments.append(
            f"swapprof sampler: mode={self.mode} hz={self.hz}, "
            f"sampler thread CPU {self.cpu_ns / 1e6:.1f} ms ({share:.2f}% of the duration)"
        )
        names = CodeNames()
        for (thread_name, tid, raw), values in self._counts.items():
            labels = (("thread_id", str(tid)), ("thread_name", thread_name))
            profile.add(names.stack(raw), values, labels)
        return profile


def sample(
    seconds: float, wait: Callable[[float], bool], *, hz: int = DEFAULT_HZ, mode: str = "cpu"
) -> Profile:
    """Profile for ``seconds``; ``wait(seconds)`` returns early (False) when the caller gives up."""
    sampler = Sampler(hz, mode)
    sampler.start()
    try:
        wait(seconds)
    finally:
        profile = sampler.stop()
    return profile
