"""A generation's telemetry, set up AFTER it reported READY so the SDK's import (~0.2 s) never
delays a switch. Phases are stamped with CLOCK_MONOTONIC when they happen and recorded as
spans afterwards with those times, so nothing is lost by starting late."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

from swapprof.server._contract import (
    ATTR_WORKER,
    ENV_RUN_DIR,
    ENV_TRACEPARENT,
    ENV_TRACESTATE,
    F_SPANS,
    telemetry_enabled,
)
from swapprof.server._notify import Notifier
from swapprof.server._rundir import RunDir

log = logging.getLogger("swapprof.server")


class GenerationTelemetry:
    def __init__(
        self,
        generation: int,
        notifier: Notifier,
        env: dict[str, str] | os._Environ[str] = os.environ,
        worker: int = 0,
    ) -> None:
        self.generation = generation
        self.worker = worker
        self.notifier = notifier
        self.enabled = telemetry_enabled(env)
        self.run_dir = env.get(ENV_RUN_DIR)
        self.traceparent = env.get(ENV_TRACEPARENT)
        self.tracestate = env.get(ENV_TRACESTATE)
        self.telemetry: Any = None
        self.gc: Any = None
        self._lock = threading.Lock()

    def setup(self) -> None:
        """Configure the SDK (blocking; run it in a thread once READY). Safe from two threads."""
        with self._lock:
            self._setup()

    def _setup(self) -> None:
        if not self.enabled or self.telemetry is not None:
            return
        try:
            from opentelemetry import metrics

            from swapprof.telemetry import configure
            from swapprof.telemetry._api import get_meter

            self.telemetry = configure("generation", self.generation, run_dir=self.run_dir)
            from swapprof.gc import GCMonitor

            self.gc = GCMonitor().install()
            generation = self.generation
            get_meter(self.telemetry.meter_provider).create_observable_gauge(
                "swapprof.generation",
                [lambda options: [metrics.Observation(generation)]],
                description="Number of this generation",
            )
        except Exception as exc:  # telemetry never stops the service
            log.warning("swapprof: telemetry setup failed: %r", exc)

    def gc_snapshot(self) -> dict[str, Any]:
        """``/debug/swapprof/gc``: this generation's GC pauses (the monitor starts once READY)."""
        if self.gc is None:
            return {"installed": False, "reason": "telemetry not set up (yet, or SWAPPROF_TELEMETRY=0)"}
        snapshot: dict[str, Any] = self.gc.snapshot()
        return snapshot

    def _recorder(self, traceparent: str | None) -> Any:
        from swapprof.telemetry._handoff import HandoffRecorder

        return HandoffRecorder.from_traceparent(traceparent, self.tracestate, record_metrics=False)

    def record(
        self,
        traceparent: str | None,
        phases: list[tuple[str, int, int, str | None]],
        *,
        last: bool = False,
        **attrs: Any,
    ) -> None:
        """Record phases (name, start mono ns, end mono ns, error) under ``traceparent``, flush,
        and tell the master which spans were sent. ``last``: this process is about to exit, so
        flush and shut down in ONE budget (SWAPPROF_FLUSH_TIMEOUT), whatever the collector does."""
        if last:
            try:
                self._record(traceparent, phases, attrs, flush=False)
                if self.telemetry is not None and self.telemetry.shutdown() and traceparent and phases:
                    self.notifier.send(**{F_SPANS: ",".join(name for name, *_ in phases)})
            except Exception as exc:
                log.warning("swapprof: recording spans failed: %r", exc)
            return
        self._record(traceparent, phases, attrs, flush=True)

    def _record(
        self,
        traceparent: str | None,
        phases: list[tuple[str, int, int, str | None]],
        attrs: dict[str, Any],
        flush: bool,
    ) -> None:
        if not self.enabled or not traceparent or not phases:
            return
        self.setup()
        if self.telemetry is None:
            return
        try:
            from swapprof.telemetry._handoff import epoch_ns

            recorder = self._recorder(traceparent)
            for name, start, end, error in phases:
                recorder.record_phase(
                    name,
                    epoch_ns(start),
                    epoch_ns(end),
                    error=error,
                    **{ATTR_WORKER: self.worker},
                    **attrs,
                )
            if flush and self.telemetry.flush():
                self.notifier.send(**{F_SPANS: ",".join(name for name, *_ in phases)})
        except Exception as exc:
            log.warning("swapprof: recording spans failed: %r", exc)

    def handoff(self) -> tuple[str | None, int | None]:
        """The trace context and READY stamp the master left for this (old) generation."""
        if not self.run_dir:
            return None, None
        run_dir = RunDir(self.run_dir)
        path = run_dir.handoff(self.generation, self.worker)
        data = run_dir.read_json(path)
        with contextlib.suppress(OSError):
            path.unlink()
        if not isinstance(data, dict):
            return None, None
        ready = data.get("ready_ns")
        return data.get("traceparent"), ready if isinstance(ready, int) else None

    def shutdown(self) -> None:
        if self.telemetry is not None:
            self.telemetry.shutdown()
