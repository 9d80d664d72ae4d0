"""The GC instruments of one meter provider: ``cpython.gc.duration`` and the semconv counters.

The counters are observed from ``gc.get_stats()`` (as the semantic conventions specify: totals
since interpreter start). Each observation first drains the primary monitor's ring into the
duration histogram, so pauses reach the histogram at every metric collection even if nobody
reads the monitor.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from swapprof.gc._histogram import GC_PAUSE_BUCKETS
from swapprof.telemetry._api import PerProvider, guarded

GC_DURATION = "cpython.gc.duration"
GC_COLLECTIONS = "cpython.gc.collections"
GC_COLLECTED = "cpython.gc.collected_objects"
GC_UNCOLLECTABLE = "cpython.gc.uncollectable_objects"
GC_GENERATION = "cpython.gc.generation"

#: per generation, the attributes of every GC data point (built once)
GENERATION_ATTRIBUTES = tuple({GC_GENERATION: g} for g in range(3))


class Drainable(Protocol):
    @property
    def installed(self) -> bool: ...

    def _drain(self) -> None: ...


class GCInstruments:
    """Instruments registered once per provider; they report the first installed monitor."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._monitors: list[weakref.ref[Drainable]] = []
        self.duration = meter.create_histogram(
            GC_DURATION,
            unit="s",
            description="Duration of a CPython garbage collection, per generation.",
            explicit_bucket_boundaries_advisory=GC_PAUSE_BUCKETS,
        )
        for name, key, unit, description in (
            (GC_COLLECTIONS, "collections", "{collection}", "Collections per generation since start."),
            (GC_COLLECTED, "collected", "{object}", "Objects collected per generation since start."),
            (GC_UNCOLLECTABLE, "uncollectable", "{object}", "Uncollectable objects found since start."),
        ):
            meter.create_observable_counter(name, [self._observer(key)], unit=unit, description=description)

    def attach(self, monitor: Drainable) -> None:
        with self._lock:
            self._monitors = [r for r in self._monitors if r() is not None]
            self._monitors.append(weakref.ref(monitor))

    def primary(self) -> Drainable | None:
        """The monitor whose pauses feed the histogram: the first one attached that is installed."""
        for ref in list(self._monitors):
            monitor = ref()
            if monitor is not None and monitor.installed:
                return monitor
        return None

    def _observer(self, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            found: list[Observation] = []
            with guarded(f"observing {key}"):
                monitor = self.primary()
                if monitor is None:
                    return found
                monitor._drain()
                for generation, stats in enumerate(gc.get_stats()):
                    found.append(Observation(stats[key], GENERATION_ATTRIBUTES[generation]))
            return found

        return observe


INSTRUMENTS: PerProvider[GCInstruments] = PerProvider(GCInstruments)
