"""HandoffRecorder: one upgrade = one OpenTelemetry trace, across every process it touches.

Usable in any server. The process that orchestrates the upgrade starts the root span
``swapprof.upgrade``; each phase is a child span (and a sample of the histogram
``swapprof.upgrade.phase.duration{phase}``). ``child_env()`` hands the trace context to a
child process through TRACEPARENT/TRACESTATE (OTel's environment carrier); the child continues
the same trace with ``HandoffRecorder.from_env()``.

    recorder = HandoffRecorder.start(trigger="deploy")
    with recorder.phase("spawn"):
        proc = subprocess.Popen(cmd, env=recorder.child_env(os.environ))
    ...
    recorder.set_outcome("success")
    recorder.end()

Spans and metrics go to ``tracer_provider``/``meter_provider`` when given, else to swapprof's own
providers (``swapprof.telemetry.configure``), else to the global ones.

Recording never raises into the host program: an SDK failure is logged and dropped. Only
misuse (an unknown phase name) raises ValueError at the call site.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from swapprof._vocabulary import check_phase
from swapprof.telemetry._api import get_meter, get_tracer
from swapprof.telemetry._settings import ENV_TRACEPARENT, ENV_TRACESTATE

log = logging.getLogger("swapprof.telemetry")

ROOT_SPAN = "swapprof.upgrade"
_propagator = TraceContextTextMapPropagator()


def epoch_ns(monotonic_ns: int) -> int:
    """Convert a CLOCK_MONOTONIC stamp (one clock for all processes) to epoch ns for OTel."""
    return time.time_ns() - (time.monotonic_ns() - monotonic_ns)


class HandoffRecorder:
    """Records the phases of one upgrade as spans of one trace (see the module docstring)."""

    def __init__(
        self,
        *,
        parent: Any = None,
        root: Span | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        record_metrics: bool = True,
    ) -> None:
        try:
            self._tracer: trace.Tracer = get_tracer(tracer_provider)
        except Exception:  # a broken SDK must not break the upgrade it watches
            log.debug("tracer unavailable; spans are dropped", exc_info=True)
            self._tracer = trace.NoOpTracer()
        try:
            meter = get_meter(meter_provider)
            self._phase_hist = meter.create_histogram(
                "swapprof.upgrade.phase.duration", unit="s", description="Duration of one upgrade phase"
            )
            self._upgrades = meter.create_counter(
                "swapprof.upgrades", description="Upgrades by outcome and reason"
            )
        except Exception:
            log.debug("meter unavailable; metrics are dropped", exc_info=True)
            meter = metrics.NoOpMeter("swapprof")
            self._phase_hist = meter.create_histogram("swapprof.upgrade.phase.duration")
            self._upgrades = meter.create_counter("swapprof.upgrades")
        self._parent = parent
        self.root = root
        self.record_metrics = record_metrics
        self.outcome: str | None = None
        self.reason: str | None = None

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        start_ns: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> HandoffRecorder:
        """Begin an upgrade: open the root span ``swapprof.upgrade`` (``start_ns`` in epoch ns)."""
        recorder = cls(**kwargs)
        try:
            recorder.root = recorder._tracer.start_span(
                ROOT_SPAN,
                start_time=start_ns,
                attributes=dict(attributes or {}),
                context=otel_context.Context(),
            )
            recorder._parent = trace.set_span_in_context(recorder.root)
        except Exception:
            log.debug("cannot start the upgrade span", exc_info=True)
        return recorder

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> HandoffRecorder:
        """Continue the trace whose context a parent put in TRACEPARENT/TRACESTATE."""
        return cls.from_traceparent(
            (os.environ if env is None else env).get(ENV_TRACEPARENT),
            (os.environ if env is None else env).get(ENV_TRACESTATE),
            **kwargs,
        )

    @classmethod
    def from_traceparent(
        cls, traceparent: str | None, tracestate: str | None = None, **kwargs: Any
    ) -> HandoffRecorder:
        carrier = {}
        if traceparent:
            carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
        return cls(parent=_propagator.extract(carrier), **kwargs)

    # -- recording -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str, **attributes: Any) -> Iterator[Span | None]:
        """Time a phase as a child span; an exception marks it failed and propagates."""
        check_phase(name)
        start = time.time_ns()
        span = self._open(name, start, attributes)
        try:
            yield span
        except BaseException as exc:
            self._close(span, name, start, time.time_ns(), error=exc)
            raise
        self._close(span, name, start, time.time_ns())

    def record_phase(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        error: str | None = None,
        record_metrics: bool | None = None,
        **attributes: Any,
    ) -> None:
        """Record a phase measured elsewhere (epoch ns), e.g. from stage reports."""
        check_phase(name)
        span = self._open(name, start_ns, attributes)
        self._close(span, name, start_ns, max(start_ns, end_ns), error=error, record_metrics=record_metrics)

    def event(self, name: str, **attributes: Any) -> None:
        with contextlib.suppress(Exception):
            if self.root is not None:
                self.root.add_event(name, attributes=attributes)

    def set_outcome(self, outcome: str, reason: str | None = None) -> None:
        self.outcome, self.reason = outcome, reason or ("ok" if outcome == "success" else "unknown")

    def set_attribute(self, key: str, value: Any) -> None:
        with contextlib.suppress(Exception):
            if self.root is not None and value is not None:
                self.root.set_attribute(key, value)

    def child_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """A copy of ``env`` (default os.environ) carrying this upgrade's trace context."""
        result = dict(os.environ if env is None else env)
        result.pop(ENV_TRACEPARENT, None)
        result.pop(ENV_TRACESTATE, None)
        carrier: MutableMapping[str, str] = {}
        with contextlib.suppress(Exception):
            _propagator.inject(carrier, context=self._parent)
        if "traceparent" in carrier:
            result[ENV_TRACEPARENT] = carrier["traceparent"]
        if carrier.get("tracestate"):
            result[ENV_TRACESTATE] = carrier["tracestate"]
        return result

    @property
    def traceparent(self) -> str | None:
        return self.child_env({}).get(ENV_TRACEPARENT)

    @property
    def trace_id(self) -> str | None:
        ctx = trace.get_current_span(self._parent).get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else None

    def end(self, end_ns: int | None = None) -> None:
        """Close the root span and count the upgrade by outcome and reason."""
        outcome, reason = self.outcome or "unknown", self.reason or "unknown"
        try:
            if self.record_metrics:
                self._upgrades.add(1, {"outcome": outcome, "reason": reason})
            if self.root is not None:
                self.root.set_attribute("swapprof.outcome", outcome)
                self.root.set_attribute("swapprof.reason", reason)
                if outcome != "success":
                    self.root.set_status(Status(StatusCode.ERROR, reason))
                self.root.end(end_time=end_ns)
        except Exception:
            log.debug("cannot end the upgrade span", exc_info=True)

    # -- internals -----------------------------------------------------------------------------
    def _open(self, name: str, start_ns: int, attributes: Mapping[str, Any]) -> Span | None:
        try:
            attrs = {"swapprof.phase": name, **{k: v for k, v in attributes.items() if v is not None}}
            return self._tracer.start_span(name, context=self._parent, start_time=start_ns, attributes=attrs)
        except Exception:
            log.debug("cannot open phase span %s", name, exc_info=True)
            return None

    def _close(
        self,
        span: Span | None,
        name: str,
        start_ns: int,
        end_ns: int,
        error: BaseException | str | None = None,
        record_metrics: bool | None = None,
    ) -> None:
        try:
            if span is not None:
                _gc_events(span, name, start_ns, end_ns)
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
                    if isinstance(error, BaseException):
                        span.record_exception(error)
                span.end(end_time=end_ns)
            if self.record_metrics if record_metrics is None else record_metrics:
                self._phase_hist.record((end_ns - start_ns) / 1e9, {"phase": name})
        except Exception:
            log.debug("cannot close phase span %s", name, exc_info=True)


def _gc_events(span: Span, phase: str, start_ns: int, end_ns: int) -> None:
    """GC pauses that overlapped the phase become events on its span ("gc gen 2, 12.3 ms,
    during import"), when a GCMonitor is installed in this process.

    The monitor module is looked up, never imported: if it is not loaded, no monitor can be
    installed, and the GC package (which records through this one) stays out of its imports.
    """
    module = sys.modules.get("swapprof.gc._monitor")
    if module is None:
        return
    monitor = module.installed_monitor()
    if monitor is None:
        return
    offset = time.time_ns() - time.perf_counter_ns()  # epoch ns -> the monitor's clock
    monitor.add_span_events(span, start_ns - offset, end_ns - offset, during=phase)
