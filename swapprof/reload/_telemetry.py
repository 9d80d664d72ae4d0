"""Reload telemetry: ``swapprof.reloads`` {module, outcome}, ``swapprof.reload.memory.growth`` (By),
``swapprof.reload.stale_versions`` and one ``swapprof.reload`` span per reload.

``outcome`` is ``failed`` when the reload raised, ``leaking`` when it succeeded and the verdict
after it is "leaking", else ``ok``. The gauges report each live tracker's latest summary (slope
in bytes per reload, stale versions). Every step is guarded: telemetry never raises.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from typing import Protocol

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import Span, Status, StatusCode

from swapprof.reload._records import ReloadRecord, ReloadSummary
from swapprof.telemetry._api import PerProvider, guarded

RELOADS = "swapprof.reloads"
MEMORY_GROWTH = "swapprof.reload.memory.growth"
STALE_VERSIONS = "swapprof.reload.stale_versions"
SPAN_NAME = "swapprof.reload"


class Reporting(Protocol):
    @property
    def latest_summary(self) -> ReloadSummary | None: ...


class ReloadInstruments:
    """The reload instruments of one meter provider; gauges read every live tracker."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._trackers: list[weakref.ref[Reporting]] = []
        self.reloads = meter.create_counter(
            RELOADS, unit="{reload}", description="Tracked in-place reloads by module and outcome."
        )
        meter.create_observable_gauge(
            MEMORY_GROWTH,
            [self._growth],
            unit="By",
            description="Retained bytes added per reload: the slope of the leak verdict.",
        )
        meter.create_observable_gauge(
            STALE_VERSIONS,
            [self._stale],
            unit="{version}",
            description="Earlier module versions with a function or class still alive.",
        )

    def attach(self, tracker: Reporting) -> None:
        with self._lock:
            self._trackers = [r for r in self._trackers if r() is not None]
            self._trackers.append(weakref.ref(tracker))

    def count(self, record: ReloadRecord, summary: ReloadSummary) -> None:
        outcome = "failed" if record.outcome == "failed" else "leaking" if summary.leaking else "ok"
        with guarded("counting a reload"):
            self.reloads.add(1, {"module": record.name, "outcome": outcome})

    def _summaries(self) -> list[ReloadSummary]:
        found = []
        for ref in list(self._trackers):
            tracker = ref()
            summary = tracker.latest_summary if tracker is not None else None
            if summary is not None:
                found.append(summary)
        return found

    def _growth(self, options: CallbackOptions) -> Iterable[Observation]:
        found: list[Observation] = []
        with guarded("observing reload memory growth"):
            found = [Observation(s.bytes_per_reload, {"module": s.name}) for s in self._summaries()]
        return found

    def _stale(self, options: CallbackOptions) -> Iterable[Observation]:
        found: list[Observation] = []
        with guarded("observing stale versions"):
            found = [Observation(s.stale_versions, {"module": s.name}) for s in self._summaries()]
        return found


INSTRUMENTS: PerProvider[ReloadInstruments] = PerProvider(ReloadInstruments)


def start_span(tracer: trace.Tracer, name: str, modules: tuple[str, ...], version: int) -> Span:
    """Start the reload span (not made current here); an invalid span if telemetry fails."""
    with guarded("starting the reload span"):
        return tracer.start_span(
            SPAN_NAME,
            attributes={
                "swapprof.reload.module": name,
                "swapprof.reload.modules": list(modules),
                "swapprof.reload.version": version,
            },
            start_time=time.time_ns(),
        )
    return trace.INVALID_SPAN


def end_span(span: Span, record: ReloadRecord, summary: ReloadSummary, error: BaseException | None) -> None:
    """Set the record's figures and the verdict on ``span`` and end it where the reload call ended."""
    with guarded("ending the reload span"):
        span.set_attributes(
            {
                "swapprof.reload.outcome": record.outcome,
                "swapprof.reload.duration_s": record.duration_s,
                "swapprof.reload.retained_bytes": record.retained_bytes,
                "swapprof.reload.stale_versions": record.stale_versions,
                "swapprof.reload.stale_objects": record.stale_objects,
                "swapprof.reload.leaking": summary.leaking,
                "swapprof.reload.verdict": summary.verdict,
                "swapprof.reload.bytes_per_reload": summary.bytes_per_reload,
            }
        )
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end(end_time=record.start_unix_ns + round(record.duration_s * 1e9))


def end_span_abruptly(span: Span, error: BaseException) -> None:
    """End ``span`` now, marked with ``error`` (a reload interrupted by a BaseException)."""
    with guarded("ending the reload span"):
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()
