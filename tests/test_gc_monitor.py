"""GCMonitor against the real collector: pauses, counts, threads, callbacks restored."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from swapprof._errors import ConfigError
from swapprof.gc import GCMonitor, _ring, installed_monitor
from swapprof.gc._ring import PauseRing


class Cycle:
    def __init__(self) -> None:
        self.me = self


def make_garbage(n: int) -> None:
    for _ in range(n):
        Cycle()


@pytest.fixture
def no_auto_gc() -> Iterator[None]:
    """Only explicit collections, so counts read at two moments are comparable."""
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def stats_of(monitor: GCMonitor) -> list[tuple[int, int, int]]:
    return [
        (g["collections"], g["collected_objects"], g["uncollectable_objects"])
        for g in monitor.snapshot()["generations"]
    ]


def gc_stats() -> list[tuple[int, int, int]]:
    return [(s["collections"], s["collected"], s["uncollectable"]) for s in gc.get_stats()]


def minus(a: list[tuple[int, int, int]], b: list[tuple[int, int, int]]) -> list[tuple[int, ...]]:
    return [tuple(x - y for x, y in zip(p, q, strict=True)) for p, q in zip(a, b, strict=True)]


def test_nothing_is_installed_on_import() -> None:
    code = "import gc, tracemalloc, swapprof.gc, swapprof.reload; print(len(gc.callbacks), tracemalloc.is_tracing())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]


def test_uninstall_restores_callbacks_exactly() -> None:
    def foreign_before(phase: str, info: dict[str, int]) -> None:
        pass

    def foreign_after(phase: str, info: dict[str, int]) -> None:
        pass

    callbacks = gc.callbacks
    callbacks.append(foreign_before)
    try:
        monitor = GCMonitor()
        monitor.install()
        monitor.install()  # twice is safe: still one callback
        assert len(gc.callbacks) == 2 and monitor.installed
        gc.callbacks.append(foreign_after)
        monitor.uninstall()
        monitor.uninstall()
        assert gc.callbacks is callbacks and gc.callbacks == [foreign_before, foreign_after]
        assert not monitor.installed
    finally:
        for cb in (foreign_before, foreign_after):
            if cb in gc.callbacks:
                gc.callbacks.remove(cb)


def test_context_manager_installs_and_uninstalls() -> None:
    with GCMonitor() as monitor:
        assert monitor.installed and installed_monitor() is monitor
    assert not monitor.installed and installed_monitor() is None


def test_forced_full_collection_is_a_generation_2_pause() -> None:
    with GCMonitor() as monitor:
        start = time.perf_counter_ns()
        gc.collect(2)
        end = time.perf_counter_ns()
    pauses = monitor.pauses_between(start, end)
    full = [p for p in pauses if p.generation == 2]
    assert len(full) == 1 and 0 < full[0].duration_s <= (end - start) / 1e9
    generation_2 = monitor.snapshot()["generations"][2]
    assert generation_2["worst_pause_s"] >= full[0].duration_s
    assert generation_2["duration_histogram_s"]["count"] == generation_2["collections"] == 1


def test_young_collections_do_not_push_out_a_full_one(no_auto_gc: None) -> None:
    with GCMonitor(capacity=8) as monitor:
        gc.collect(2)
        for _ in range(100):
            gc.collect(0)
        pauses = monitor.pauses()
        lapped = monitor.snapshot()["generations"][0]["lapped"]
    assert [p.generation for p in pauses].count(2) == 1
    assert [p.generation for p in pauses].count(0) == 8 and lapped == 92


def test_counts_agree_with_gc_get_stats(no_auto_gc: None) -> None:
    with GCMonitor() as monitor:
        before, own_before = gc_stats(), stats_of(monitor)
        for generation in (0, 1, 2, 0, 2):
            make_garbage(500)
            gc.collect(generation)
        after, own_after = gc_stats(), stats_of(monitor)
    assert minus(own_after, own_before) == minus(after, before)
    assert minus(after, before)[2][0] == 2 and minus(after, before)[0][1] >= 1000


def test_multithreaded_churn_loses_no_count(no_auto_gc: None) -> None:
    """Threads make cyclic garbage with the collector on while a tiny ring laps constantly."""
    monitor = GCMonitor(capacity=8)
    with monitor:
        before = gc_stats()
        gc.enable()
        stop = threading.Event()

        def churn() -> None:
            while not stop.is_set():
                make_garbage(200)

        threads = [threading.Thread(target=churn) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(20):
            make_garbage(2_000)
            monitor.pauses()  # readers race the writer
        stop.set()
        for t in threads:
            t.join()
        gc.disable()
        after = gc_stats()
        snapshot = monitor.snapshot()
    assert minus(stats_of(monitor), [(0, 0, 0)] * 3) == minus(after, before)
    for g in snapshot["generations"]:  # lapped pauses still counted in the histogram, sum exact
        assert g["duration_histogram_s"]["count"] == g["collections"]
        assert g["duration_histogram_s"]["sum"] == pytest.approx(g["pause_total_s"])
    assert snapshot["generations"][0]["lapped"] > 0
    assert all(len([p for p in monitor.pauses() if p.generation == g]) <= 8 for g in range(3))


def test_callback_memory_stays_fixed() -> None:
    """The callback makes no container; the ints it stores replace earlier ones in their slots."""
    ring = PauseRing(16)
    callback = ring.make_callback()
    info = {"generation": 1, "collected": 3, "uncollectable": 0}
    ring_file = tracemalloc.Filter(True, _ring.__file__)
    held = []
    tracemalloc.start()
    try:
        for _ in range(3):
            for _ in range(5_000):
                callback("start", info)
                callback("stop", info)
            snapshot = tracemalloc.take_snapshot().filter_traces([ring_file])
            held.append(sum(s.size for s in snapshot.statistics("filename")))
    finally:
        tracemalloc.stop()
    assert ring.totals[0][1] == 15_000
    assert 0 < held[0] <= 16 * 4 * 32 + 5 * 3 * 32  # at most one int per slot and total
    assert max(held) - min(held) <= 64  # a few ints of a different size, no growth


def test_collection_while_a_reader_holds_the_lock_does_not_deadlock() -> None:
    """The prometheus client deadlock: a collection starting while the reader's lock is held."""
    with GCMonitor() as monitor:
        done = threading.Event()

        def collect() -> None:
            gc.collect(2)
            done.set()

        with monitor._lock:  # a reader mid-drain, in this thread
            gc.collect(2)  # the callback must not need the lock
            worker = threading.Thread(target=collect, daemon=True)
            worker.start()
            assert done.wait(30)
        worker.join()
    assert sum(p.generation == 2 for p in monitor.pauses()) == 2


def test_pauses_become_span_events() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with GCMonitor() as monitor:
        span = provider.get_tracer("test").start_span("swapprof.upgrade.import")
        start = time.perf_counter_ns()
        gc.collect(2)
        end = time.perf_counter_ns()
        added = monitor.add_span_events(span, start, end, during="import", min_duration_s=0)
        span.end()
    provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    names = [e.name for e in finished.events]
    assert added == len(names) >= 1
    assert any(re.fullmatch(r"gc gen 2, \d+\.\d ms, during import", n) for n in names)
    event = next(e for e in finished.events if e.name.startswith("gc gen 2"))
    assert event.attributes is not None and event.attributes["cpython.gc.generation"] == 2
    assert finished.start_time is not None  # on the wall clock, not perf_counter's
    assert abs(event.timestamp - finished.start_time) < 1_000_000_000


def test_snapshot_is_json_able() -> None:
    with GCMonitor() as monitor:
        gc.collect()
        snapshot = json.loads(json.dumps(monitor.snapshot()))
    assert snapshot["installed"] is True and len(snapshot["generations"]) == 3
    assert snapshot["recent"][-1]["generation"] == 2
    assert snapshot["generations"][2]["duration_histogram_s"]["le"][-1] == "+Inf"


def test_capacity_must_be_a_power_of_two() -> None:
    with pytest.raises(ConfigError):
        GCMonitor(capacity=1000)
