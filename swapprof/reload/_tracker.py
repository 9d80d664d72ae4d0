"""ReloadTracker: what each in-place reload costs and leaves alive, and whether memory leaks.

Around each reload: a full collection, then RSS, a filtered tracemalloc snapshot and object
counts, on both sides; then the functions and classes of earlier module versions still alive
(see ``_stale``), with a referrer path for the oldest few. The verdict is in ``_stats``.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import tracemalloc
import types
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Self

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from swapprof._errors import ConfigError, SwapprofError
from swapprof.gc._monitor import GCMonitor, installed_monitor
from swapprof.gc._span_events import add_pause_events
from swapprof.reload import _memory
from swapprof.reload._records import ReloadRecord, ReloadSummary
from swapprof.reload._stale import VersionLedger
from swapprof.reload._telemetry import (
    INSTRUMENTS,
    ReloadInstruments,
    end_span,
    end_span_abruptly,
    start_span,
)
from swapprof.reload._verdict import Settings, summarize
from swapprof.telemetry._api import get_tracer, guarded

_SAMPLES_KEPT = 10_000


class ReloadError(SwapprofError):
    """A tracked reload raised (``record`` holds its measurements, ``__cause__`` the error), or the
    tracker could not run one (closed, or already inside a tracked reload; ``record`` is None)."""

    def __init__(self, message: str, record: ReloadRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


class ReloadTracker:
    """Measures each reload of ``modules`` (modules or their names) and judges memory growth.

    - ``name``: the ``module`` attribute of metrics and spans (default: the module names joined).
    - ``tracemalloc_frames``: frames per trace if tracemalloc has to be started (None: never start
      it; memory then comes from RSS). ``close()`` stops it only if this tracker started it.
      Tracing slows allocation-heavy code several times over, more with more frames (see
      ``_memory`` and benchmarks/tracemalloc_cost.py).
    - ``gc_monitor``: its pauses during a reload become events on the reload span (default: the
      installed GCMonitor, if any).
    - ``confidence``, ``warmup``, ``min_samples``, ``threshold_bytes``: the verdict (see ``_verdict``).
    - ``top``: allocation sites and object-count changes kept per record; ``referrer_paths``: stale
      objects (oldest first) given a referrer path; ``count_objects``: count gc-tracked objects by
      type on both sides (one pass over the heap each); ``history``: records kept.
    - ``meter_provider``, ``tracer_provider``: default to swapprof's own providers once
      ``swapprof.telemetry.configure()`` ran, else to the global OTel providers.

    Each reload costs two full collections, two tracemalloc snapshots (time grows with live traced
    blocks) and, by default, two object counts: fine for reloads, not for a hot path.
    """

    def __init__(
        self,
        modules: Iterable[types.ModuleType | str] = (),
        *,
        name: str | None = None,
        tracemalloc_frames: int | None = _memory.DEFAULT_TRACEMALLOC_FRAMES,
        gc_monitor: GCMonitor | None = None,
        confidence: float = 0.95,
        warmup: int = 1,
        min_samples: int = 3,
        threshold_bytes: float = 1024.0,
        top: int = 10,
        referrer_paths: int = 3,
        count_objects: bool = True,
        history: int = 100,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.modules = tuple(m if isinstance(m, str) else m.__name__ for m in modules)
        self.name = name or ",".join(self.modules) or "reload"
        if tracemalloc_frames is not None and not 1 <= tracemalloc_frames <= 1000:
            raise ConfigError(f"tracemalloc_frames must be None or 1..1000, not {tracemalloc_frames!r}")
        if min(top, referrer_paths, history) < 0:
            raise ConfigError("top, referrer_paths and history must not be negative")
        self._settings = Settings(confidence, warmup, min_samples, threshold_bytes)
        self._top, self._paths, self._count_objects = top, referrer_paths, count_objects
        self._gc_monitor = gc_monitor
        self._tracing = _memory.TracingSession(tracemalloc_frames)
        self._tracer_provider, self._meter_provider = tracer_provider, meter_provider
        self._instruments: ReloadInstruments | None = None
        with guarded("registering reload instruments"):
            self._instruments = INSTRUMENTS.follow(meter_provider, None, self)
        self._lock = threading.RLock()
        self._busy = self._closed = False
        self._version = 0
        self._ledger = VersionLedger()
        self._records: deque[ReloadRecord] = deque(maxlen=history)
        self._retained: deque[tuple[int, int]] = deque(maxlen=_SAMPLES_KEPT)  # (version, bytes), ok only
        self._totals = [0, 0, 0]  # reloads, failed, retained bytes
        self._latest: ReloadSummary | None = None
        self._tracing.ensure()
        for module in self._present():
            self._ledger.record(module, 0)

    def reload(self) -> ReloadRecord:
        """``importlib.reload`` each module in order, measured as one reload."""
        if not self.modules:
            raise ConfigError("no modules to reload: pass modules=[...] or use track()")
        missing = [m for m in self.modules if m not in sys.modules]
        if missing:
            raise ConfigError(f"not imported, cannot reload: {', '.join(missing)}")

        def reload_all() -> None:
            for module in self.modules:
                importlib.reload(sys.modules[module])

        return self.track(reload_all)

    def track(self, reload: Callable[[], object]) -> ReloadRecord:
        """Call ``reload`` (any function that reloads code) once, measured; return its record.

        Raises ReloadError, with the record and the original error as cause, if it raised.
        """
        with self._lock:
            if self._closed or self._busy:
                raise ReloadError("tracker is closed" if self._closed else "already inside a tracked reload")
            self._busy = True
            try:
                return self._track(reload)
            finally:
                self._busy = False

    def records(self) -> list[ReloadRecord]:
        """The last ``history`` records, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def latest_summary(self) -> ReloadSummary | None:
        """The summary as of the last reload (None before any), read without locking."""
        return self._latest

    def summary(self) -> ReloadSummary:
        """The verdict so far."""
        with self._lock:
            return self._latest or summarize(self.name, self._settings, [], self._totals, None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: settings, tracemalloc state, summary and recent records."""
        with self._lock:
            tracing = tracemalloc.is_tracing()
            return {
                "name": self.name,
                "modules": list(self.modules),
                "tracemalloc": {
                    "tracing": tracing,
                    "frames": tracemalloc.get_traceback_limit() if tracing else None,
                    "started_by_tracker": self._tracing.owned,
                },
                "summary": self.summary().to_dict(),
                "reloads": [r.to_dict() for r in self._records],
            }

    def close(self) -> None:
        """Stop tracemalloc if this tracker started it; further reloads raise ReloadError."""
        with self._lock:
            self._closed = True
            self._tracing.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _present(self) -> list[types.ModuleType]:
        return [sys.modules[m] for m in self.modules if m in sys.modules]

    def _track(self, reload: Callable[[], object]) -> ReloadRecord:
        tracing = self._tracing.ensure()
        before = _memory.measure(tracing, self._count_objects)
        version = self._version = self._version + 1
        span = start_span(get_tracer(self._tracer_provider), self.name, self.modules, version)
        start_unix, t0 = time.time_ns(), time.perf_counter_ns()
        error: Exception | None = None
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                reload()
        except Exception as exc:
            error = exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: end the span, measure nothing
            end_span_abruptly(span, exc)
            raise
        t1 = time.perf_counter_ns()
        after = _memory.measure(tracing, self._count_objects, before, self._top)
        for module in self._present():
            self._ledger.record(module, version)
        monitor = self._gc_monitor or installed_monitor()
        pauses = tuple(monitor.pauses_between(t0, t1)) if monitor is not None else ()
        retained = after.traced - before.traced if tracing else (after.rss or 0) - (before.rss or 0)
        stale = self._ledger.stale_objects(self._paths)
        record = ReloadRecord(
            name=self.name,
            version=version,
            modules=self.modules,
            outcome="failed" if error else "ok",
            error=f"{type(error).__name__}: {error}" if error else None,
            start_unix_ns=start_unix,
            duration_s=(t1 - t0) / 1e9,
            rss_before=before.rss,
            rss_after=after.rss,
            memory_source="tracemalloc" if tracing else "rss",
            retained_bytes=retained,
            top_growth=after.growth,
            object_deltas=_memory.type_deltas(before, after, self._top),
            stale=stale,
            stale_versions=len({(s.module, s.version) for s in stale}),
            gc_pauses=pauses,
        )
        del before, after
        self._records.append(record)
        self._totals[0] += 1
        self._totals[1] += error is not None
        self._totals[2] += retained
        if error is None:
            self._retained.append((version, retained))
        summary = self._latest = summarize(self.name, self._settings, self._retained, self._totals, record)
        with guarded("counting a reload"):
            self._instruments = INSTRUMENTS.follow(self._meter_provider, self._instruments, self)
            self._instruments.count(record, summary)
        add_pause_events(span, pauses, "reload")
        end_span(span, record, summary, error)
        if error is not None:
            raise ReloadError(f"reload of {self.name} failed: {record.error}", record) from error
        return record
