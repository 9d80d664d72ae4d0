"""The collectors without HTTP: CPU sampler, tracemalloc heap, threads and tasks, settings."""

from __future__ import annotations

import importlib.util
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapprof._errors import ConfigError
from swapprof.pprof import (
    Profile,
    ProfilerUnavailableError,
    ProfilingInUseError,
    _cpu,
    cpu_profile,
    heap_profile,
)
from swapprof.pprof._settings import Settings, tracemalloc_frames


def swapprof_test_spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(200))


def swapprof_test_idle(stop: threading.Event) -> None:
    stop.wait()


@pytest.fixture
def workload() -> Iterator[None]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=swapprof_test_spin, args=(stop,), name="spinner"),
        threading.Thread(target=swapprof_test_idle, args=(stop,), name="sleeper"),
    ]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join()


def functions(profile: Profile) -> set[str]:
    return {frame[0] for stack, _labels in profile.samples for frame in stack}


def test_cpu_mode_weighs_by_thread_cpu_time(workload: None) -> None:
    profile = cpu_profile(1, hz=200)
    names = functions(profile)
    assert "swapprof_test_spin" in names
    assert "swapprof_test_idle" not in names  # asleep: no CPU, no samples
    assert "Sampler._run" not in names  # the sampler leaves itself out
    assert profile.period == 5_000_000 and profile.sample_types[1] == ("cpu", "nanoseconds")
    spin = sum(v[1] for (stack, _l), v in profile.samples.items() if stack[0][0] == "swapprof_test_spin")
    assert spin > 0.3 * profile.totals()[1]
    labels = {dict(labels)["thread_name"] for _stack, labels in profile.samples}
    assert "spinner" in labels
    assert all(set(dict(lab)) == {"thread_id", "thread_name"} for _s, lab in profile.samples)
    assert all(v[0] > 0 and v[1] > 0 for v in profile.samples.values())
    leaf = next(stack[0] for stack, _l in profile.samples if stack[0][0] == "swapprof_test_spin")
    assert leaf[1] == __file__ and leaf[2] == swapprof_test_spin.__code__.co_firstlineno


def test_wall_mode_counts_sleeping_threads(workload: None) -> None:
    stop = threading.Event()
    stop.set()  # end at once: a partial profile is still a profile
    assert cpu_profile(30, mode="wall", stop=stop).sample_types[1] == ("wall", "nanoseconds")
    profile = cpu_profile(1, mode="wall", hz=50)
    assert {"swapprof_test_spin", "swapprof_test_idle"} <= functions(profile)
    assert profile.period_type == ("wall", "nanoseconds")


def test_one_cpu_profile_at_a_time() -> None:
    _cpu.acquire()
    try:
        with pytest.raises(ProfilingInUseError, match="cpu profiling already in use"):
            cpu_profile(1)
        with pytest.raises(ProfilingInUseError):
            cpu_profile(1, backend="py-spy")
    finally:
        _cpu.release()


@pytest.mark.parametrize(
    "kwargs",
    [{"hz": 0}, {"hz": 20_000}, {"mode": "gpu"}, {"backend": "perf"}, {"pid": 1}],
)
def test_bad_cpu_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        cpu_profile(1, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        cpu_profile(0)
    assert not _cpu.in_use()


def test_thread_cpu_clock_of_an_exited_thread_is_none() -> None:
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    assert thread.native_id is not None
    assert _cpu.thread_cpu_ns(threading.get_native_id()) is not None
    # an exited tid answers EINVAL (or, if the tid was reused meanwhile, another thread's clock)
    assert _cpu.thread_cpu_ns(2**22 + 12345) is None


MODULE_SOURCE = """
import functools

TABLE = [bytearray(64) for _ in range(10)]


class Holder:
    def fill(self):
        self.blocks = [bytearray(1000) for _ in range(200)]
        self.big = bytearray(300_000)
        return self


def decorate(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)
    return wrapper


@decorate
def outer():
    def inner():
        return {i: bytearray(500) for i in range(100)}
    return inner()
"""


@pytest.fixture
def allocating_module(tmp_path: Path) -> Iterator[object]:
    path = tmp_path / "swapprof_heap_subject.py"
    path.write_text(MODULE_SOURCE)
    spec = importlib.util.spec_from_file_location("swapprof_heap_subject", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_heap_names_match_cpython_qualnames(allocating_module: object) -> None:
    with pytest.raises(ProfilerUnavailableError, match="SWAPPROF_TRACEMALLOC=1"):
        heap_profile()
    tracemalloc.start(16)
    try:
        keep = [allocating_module.Holder().fill(), allocating_module.outer()]  # type: ignore[attr-defined]
        profile = heap_profile(gc=True)
    finally:
        tracemalloc.stop()
    by_leaf: dict[str, int] = {}
    for (stack, _labels), (_count, size) in profile.samples.items():
        if stack and stack[0][1].endswith("swapprof_heap_subject.py"):
            by_leaf[stack[0][0]] = by_leaf.get(stack[0][0], 0) + size
    assert by_leaf["Holder.fill"] >= 300_000
    assert by_leaf["Holder.fill.<locals>.<listcomp>"] >= 200_000
    assert by_leaf["outer.<locals>.inner.<locals>.<dictcomp>"] >= 50_000
    chain = next(s for s, _l in profile.samples if s[0][0] == "outer.<locals>.inner.<locals>.<dictcomp>")
    names = [frame[0] for frame in chain if frame[1].endswith("swapprof_heap_subject.py")]
    assert names[:4] == [
        "outer.<locals>.inner.<locals>.<dictcomp>",
        "outer.<locals>.inner",
        "outer",
        "decorate.<locals>.wrapper",
    ]
    fill = next(frame for s, _l in profile.samples for frame in s if frame[0] == "Holder.fill")
    assert fill[2] == allocating_module.Holder.fill.__code__.co_firstlineno  # type: ignore[attr-defined]
    assert profile.sample_types == [("inuse_objects", "count"), ("inuse_space", "bytes")]
    del keep


def test_delta_heap_traces_only_its_window() -> None:
    grown: list[bytearray] = []
    stop = threading.Event()

    def swapprof_test_grow() -> None:
        while not stop.wait(0.001):
            grown.append(bytearray(4096))

    grower = threading.Thread(target=swapprof_test_grow)
    grower.start()
    try:
        profile = heap_profile(name="allocs", seconds=1, frames=8)
    finally:
        stop.set()
        grower.join()
    assert not tracemalloc.is_tracing()  # started for the window, stopped after
    assert profile.default_sample_type == "alloc_space"
    growth = sum(
        v[1]
        for (stack, _l), v in profile.samples.items()
        if any(f[0].endswith("swapprof_test_grow") for f in stack)
    )
    assert growth > 0
    assert all(any(v) for v in profile.samples.values())


def test_settings_from_arguments_then_environment() -> None:
    env = {
        "SWAPPROF_PPROF_TOKEN": "e",
        "SWAPPROF_PPROF_MAX_SECONDS": "7",
        "SWAPPROF_PPROF_HZ": "250",
        "SWAPPROF_TRACEMALLOC": "1",
    }
    assert Settings.resolve(environ=env) == Settings("e", {}, 7, 250, 32)
    assert Settings.resolve(token="a", max_seconds=9, hz=10, tracemalloc=5, environ=env) == Settings(
        "a", {}, 9, 10, 5
    )
    assert Settings.resolve(environ={}) == Settings(None, {}, 300, 100, 0)
    assert [tracemalloc_frames(v) for v in ("", "off", "true", "1", "25", None, True, 4)] == [
        0,
        0,
        32,
        32,
        25,
        0,
        32,
        4,
    ]
    for bad in (
        {"SWAPPROF_PPROF_HZ": "fast"},
        {"SWAPPROF_PPROF_MAX_SECONDS": "0"},
        {"SWAPPROF_TRACEMALLOC": "x"},
    ):
        with pytest.raises(ConfigError):
            Settings.resolve(environ=bad)
    with pytest.raises(ConfigError):
        Settings.resolve(routes={"a/b": dict}, environ={})
