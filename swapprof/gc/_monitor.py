"""GCMonitor: every CPython collection's pause, per generation, without a lock in the collector.

``install()`` appends one callback to ``gc.callbacks``; the callback only writes into a
preallocated ring (see ``_ring``). Readers drain the ring on ``pauses()``, ``snapshot()``,
``pauses_between()`` and at each OTel metric collection, and only then aggregate. A lock in the
callback can deadlock when a collection starts while the same thread holds it (why
prometheus/client_python dropped its GC histogram); readers here lock only against each other.
"""

from __future__ import annotations

import gc
import heapq
import threading
from collections import deque
from types import TracebackType
from typing import Any, Self

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span

from swapprof._errors import ConfigError
from swapprof.gc._histogram import PauseHistogram
from swapprof.gc._metrics import GENERATION_ATTRIBUTES, INSTRUMENTS, GCInstruments
from swapprof.gc._ring import GENERATIONS, GCPause, PauseRing
from swapprof.gc._span_events import add_pause_events
from swapprof.telemetry._api import guarded

DEFAULT_CAPACITY = 4096
_installed: list[GCMonitor] = []  # install order; the last one is the "current" monitor


def installed_monitor() -> GCMonitor | None:
    """The most recently installed GCMonitor that is still installed, if any."""
    for monitor in reversed(_installed):
        if monitor.installed:
            return monitor
    return None


class GCMonitor:
    """Times every collection, per generation.

    Up to ``capacity`` (a power of two) pauses per generation are kept between two reads (a read
    is ``pauses()``, ``snapshot()``, ``pauses_between()`` or an OTel metric collection). Beyond
    that the oldest are "lapped": still counted, with their total time, in ``snapshot()`` and
    ``cpython.gc.collections``, but not individually in ``pauses()`` or ``cpython.gc.duration``.
    Metrics go to ``meter_provider``, else to swapprof's own (``swapprof.telemetry.configure``),
    else to the global one.
    """

    def __init__(
        self, *, capacity: int = DEFAULT_CAPACITY, meter_provider: MeterProvider | None = None
    ) -> None:
        if capacity < 2 or capacity & (capacity - 1):
            raise ConfigError(f"capacity must be a power of two >= 2, not {capacity!r}")
        self._ring = PauseRing(capacity)
        self._callback = self._ring.make_callback()
        self._recent = tuple(deque[GCPause](maxlen=capacity) for _ in range(GENERATIONS))
        self._histogram = PauseHistogram()
        self._missed = [0] * GENERATIONS
        self._lock = threading.RLock()
        self._draining = False
        self._meter_provider = meter_provider
        self._instruments: GCInstruments | None = None
        with guarded("registering GC instruments"):
            self._instruments = INSTRUMENTS.follow(meter_provider, None, self)

    @property
    def installed(self) -> bool:
        """True while this monitor's callback is in ``gc.callbacks``."""
        return any(cb is self._callback for cb in gc.callbacks)

    def install(self) -> Self:
        """Start timing collections; a second call does nothing."""
        if not self.installed:
            self._ring.started[0] = 0  # a start seen before an uninstall must not pair with a new stop
            gc.callbacks.append(self._callback)
            _installed.append(self)
        return self

    def uninstall(self) -> None:
        """Stop timing; removes exactly this monitor's callback and keeps what was measured."""
        self._drain()
        for i, cb in enumerate(gc.callbacks):
            if cb is self._callback:
                del gc.callbacks[i]
                break
        if self in _installed:
            _installed.remove(self)

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()

    def pauses(self) -> list[GCPause]:
        """The most recent pauses (up to ``capacity`` per generation), oldest first."""
        self._drain()
        with self._lock:
            return list(heapq.merge(*self._recent, key=lambda p: p.start_ns))

    def pauses_between(self, start_ns: int, end_ns: int) -> list[GCPause]:
        """Recent pauses overlapping ``[start_ns, end_ns]`` on the ``time.perf_counter_ns`` clock."""
        return [p for p in self.pauses() if p.start_ns <= end_ns and p.end_ns >= start_ns]

    def add_span_events(
        self,
        span: Span,
        start_ns: int,
        end_ns: int,
        *,
        during: str = "",
        min_duration_s: float = 0.0,
        limit: int = 32,
    ) -> int:
        """Add one event per pause overlapping the interval ("gc gen 2, 12.3 ms, during import").

        Keeps the ``limit`` longest pauses of at least ``min_duration_s``; returns how many were added.
        """
        return add_pause_events(span, self.pauses_between(start_ns, end_ns), during, min_duration_s, limit)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view: per-generation counts, pause histogram and worst pause, recent pauses."""
        self._drain()
        n_count, n_sum, n_col, n_unc, n_max = self._ring.totals
        with self._lock:
            generations = [
                {
                    "generation": g,
                    "collections": n_count[g],
                    "collected_objects": n_col[g],
                    "uncollectable_objects": n_unc[g],
                    "pause_total_s": n_sum[g] / 1e9,
                    "worst_pause_s": n_max[g] / 1e9,
                    "lapped": self._missed[g],
                    "duration_histogram_s": self._histogram.to_dict(g),
                }
                for g in range(GENERATIONS)
            ]
            recent = [p.to_dict() for p in list(heapq.merge(*self._recent, key=lambda p: p.start_ns))[-50:]]
        return {
            "installed": self.installed,
            "capacity": self._ring.capacity,
            "gc": {"enabled": gc.isenabled(), "threshold": list(gc.get_threshold())},
            "generations": generations,
            "recent": recent,
        }

    def _drain(self) -> None:
        """Move published pauses from the rings to the recent lists and the histograms."""
        with self._lock:
            if self._draining:  # re-entered, e.g. from a finalizer run by a collection
                return
            self._draining = True
            try:
                pauses, missed = self._ring.read()
                for p in pauses:
                    self._recent[p.generation].append(p)
                    self._histogram.add(p.generation, p.duration_s)
                for m in missed:  # exact count and sum; the mean stands for each lapped value
                    self._histogram.add(m.generation, m.total_ns / 1e9 / m.count, m.count)
                    self._missed[m.generation] += m.count
                self._record(pauses)
            finally:
                self._draining = False

    def _record(self, pauses: list[GCPause]) -> None:
        """Pauses the rings kept go to ``cpython.gc.duration``; lapped ones do not (an SDK
        ``record`` costs microseconds, so the reader's work stays bounded by the capacity)."""
        if not pauses:
            return
        with guarded("following the meter provider"):
            self._instruments = INSTRUMENTS.follow(self._meter_provider, self._instruments, self)
        instruments = self._instruments
        if instruments is None or instruments.primary() is not self:
            return
        with guarded("recording GC pauses"):
            record = instruments.duration.record
            for p in pauses:
                record(p.duration_s, GENERATION_ATTRIBUTES[p.generation])
