"""Configure the OpenTelemetry SDK once per process: argument, then env (see ``_settings``), then default.

swapprof records into providers of its own (``Telemetry.tracer_provider`` / ``meter_provider``,
reached through ``current()``): spans appended as JSON lines to ``RUN_DIR/spans.jsonl``
(bounded, rotated), metrics read by a Prometheus reader (served as ``/metrics``); with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, traces and metrics also go over OTLP/HTTP (protobuf).
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` are honoured by ``Resource.create``.

The process-global OTel providers belong to the application. They are left alone unless
``otel_global`` (``SWAPPROF_OTEL_GLOBAL=1``) asks otherwise, and even then only when nobody
(the app, ``opentelemetry-instrument``) has set one. With it, swapprof's meter provider becomes
the global one (the app's metrics join ``/metrics`` and OTLP), and a second tracer provider,
with the same resource and only the OTLP processor, becomes the global tracer provider. A
separate provider rather than a processor filtering the span file by instrumentation scope:
an app's span can then never reach the span file whatever its scope is called, and the file's
cost stays swapprof's own (no per-span filter on the app's hot path).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapprof.telemetry._settings import (
    ENV_SERVICE_NAME,
)
from swapprof.telemetry._settings import (
    flush_timeout as _flush_timeout,
)
from swapprof.telemetry._settings import (
    otel_global as _otel_global,
)
from swapprof.telemetry._settings import (
    span_file_max_bytes as _span_file_max_bytes,
)
from swapprof.telemetry._settings import (
    traces_endpoint as _traces_endpoint,
)

log = logging.getLogger("swapprof.telemetry")

SPAN_FILE = "spans.jsonl"
DROPPED_SPANS = "swapprof.telemetry.dropped_spans"

SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SECONDS_HISTOGRAMS = (
    "swapprof.upgrade.phase.duration",
    "swapprof.upgrade.time_to_ready",
    "swapprof.upgrade.service_gap",
    "cpython.gc.duration",
)


@dataclass
class Telemetry:
    """The configured providers of this process and how to flush them.

    ``tracer_provider`` and ``meter_provider`` are swapprof's own; ``app_tracer_provider`` is
    the global tracer provider swapprof installed for the app (``otel_global``), else None.
    """

    tracer_provider: Any
    meter_provider: Any
    span_file: Path | None
    otlp_endpoint: str | None
    flush_timeout: float
    span_exporter: Any = None
    app_tracer_provider: Any = None
    _closed: bool = field(default=False, repr=False)

    def _providers(self) -> list[Any]:
        return [p for p in (self.tracer_provider, self.app_tracer_provider, self.meter_provider) if p]

    def flush(self, timeout: float | None = None) -> bool:
        """Export what is pending, within ``timeout`` seconds in all; never raises."""
        budget_ms = int(1000 * (self.flush_timeout if timeout is None else timeout))
        return _bounded(
            budget_ms / 1000, "flush", lambda: all([p.force_flush(budget_ms) for p in self._providers()])
        )

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, then stop exporters: both within ``timeout`` (default ``flush_timeout``) in
        all, whatever the collector does. Call before exit or exec; safe twice."""
        if self._closed:
            return True
        self._closed = True
        budget = self.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        ok = self.flush(budget * 0.8)
        left = max(0.05, deadline - time.monotonic())

        def run() -> bool:
            for provider in self._providers():
                if provider is self.meter_provider:
                    provider.shutdown(timeout_millis=int(1000 * left))
                else:
                    provider.shutdown()
            return True

        _bounded(left, "shutdown", run)
        return ok


def _bounded(seconds: float, what: str, work: Any) -> bool:
    """Run ``work`` in a daemon thread, waiting at most ``seconds``; False on timeout or error."""
    done = threading.Event()
    result = [False]

    def run() -> None:
        try:
            result[0] = bool(work())
        except Exception:  # telemetry never raises into the host
            log.debug("%s failed", what, exc_info=True)
        finally:
            done.set()

    threading.Thread(target=run, name=f"swapprof-{what}", daemon=True).start()
    done.wait(seconds + 0.1)
    return result[0]


_current: Telemetry | None = None
_lock = threading.Lock()


def current() -> Telemetry | None:
    """This process's telemetry, once ``configure`` ran (swapprof's recorders default to it)."""
    return _current


def forget(timeout: float = 0.3) -> None:
    """In a forked child: let go of the telemetry inherited from the parent.

    Its providers are shut down here (bounded by ``timeout``, whatever a lock copied by the fork
    does) without exporting the parent's data again, its atexit flush is dropped, and the next
    ``configure`` builds this process's own."""
    global _current
    inherited, _current = _current, None  # no lock: a fork copies only the thread that forked
    if inherited is None:
        return
    atexit.unregister(inherited.shutdown)
    inherited.shutdown(timeout)


def configure(
    role: str,
    generation: int | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    span_file: str | os.PathLike[str] | None = None,
    span_file_max_bytes: int | None = None,
    prometheus: bool = True,
    flush_timeout: float | None = None,
    otel_global: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> Telemetry:
    """Build (once per process) the tracer and meter providers swapprof records into.

    Raises ``ConfigError`` for an invalid setting; nothing else it does raises.
    """
    global _current
    env = os.environ if env is None else env
    with _lock:
        if _current is not None:
            return _current
        timeout = _flush_timeout(flush_timeout, env)
        max_bytes = _span_file_max_bytes(span_file_max_bytes, env)
        make_global = _otel_global(otel_global, env)
        path = Path(span_file) if span_file is not None else Path(run_dir) / SPAN_FILE if run_dir else None
        endpoint = _traces_endpoint(otlp_endpoint, env)
        resource = _resource(role, generation, service_name, env)
        _current = _build(resource, path, max_bytes, otlp_endpoint, endpoint, prometheus, timeout, env)
        if make_global:
            _install_global(_current, resource, otlp_endpoint, env)
        atexit.register(_current.shutdown)
        return _current


def _resource(role: str, generation: int | None, service_name: str | None, env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = {"process.pid": os.getpid(), "swapprof.role": role}
    if generation is not None:
        attributes["swapprof.generation"] = generation
    if not env.get(ENV_SERVICE_NAME):
        attributes["service.name"] = service_name or "swapprof"
    return Resource.create(attributes)


def _build(
    resource: Any,
    path: Path | None,
    max_bytes: int,
    otlp_endpoint: str | None,
    endpoint: str | None,
    prometheus: bool,
    flush_timeout: float,
    env: Mapping[str, str],
) -> Telemetry:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from swapprof.telemetry._jsonl import JsonLinesSpanExporter

    # shutdown_on_exit=False: swapprof shuts its providers down itself, within its bound; the
    # SDK's atexit shutdown would wait on a collector that does not answer all over again
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = None
    if path is not None:
        exporter = JsonLinesSpanExporter(path, max_bytes=max_bytes)
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    readers: list[Any] = []
    if endpoint:
        from swapprof.telemetry._otlp import otlp_metric_reader, otlp_span_processor

        tracer_provider.add_span_processor(otlp_span_processor(otlp_endpoint, flush_timeout, env))
        readers.append(otlp_metric_reader(otlp_endpoint, flush_timeout, env))
    if prometheus:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    views = [
        View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS))
        for name in SECONDS_HISTOGRAMS
    ]
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, views=views, shutdown_on_exit=False
    )
    if exporter is not None:
        _count_drops(meter_provider, exporter)
    return Telemetry(tracer_provider, meter_provider, path, endpoint, flush_timeout, exporter)


def _count_drops(meter_provider: Any, exporter: Any) -> None:
    from opentelemetry.metrics import CallbackOptions, Observation

    from swapprof._version import __version__

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(n, {"reason": r}) for r, n in exporter.dropped_by_reason.items()]

    meter_provider.get_meter("swapprof", __version__).create_observable_counter(
        DROPPED_SPANS, [observe], unit="{span}", description="Spans the embedded span file lost, by reason"
    )


def _install_global(
    telemetry: Telemetry, resource: Any, otlp_endpoint: str | None, env: Mapping[str, str]
) -> None:
    """Make swapprof's SDK the process-global provider, where no one else already did."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        app = TracerProvider(
            resource=resource, shutdown_on_exit=False
        )  # never the span file: see the module docstring
        if telemetry.otlp_endpoint:
            from swapprof.telemetry._otlp import otlp_span_processor

            app.add_span_processor(otlp_span_processor(otlp_endpoint, telemetry.flush_timeout, env))
        trace.set_tracer_provider(app)
        telemetry.app_tracer_provider = app
    else:
        log.info("swapprof: a global tracer provider is already set; leaving it to the app")
    # The API's proxy is the only provider that is not set by someone; its class is private.
    if type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
        metrics.set_meter_provider(telemetry.meter_provider)
    else:
        log.info("swapprof: a global meter provider is already set; leaving it to the app")
