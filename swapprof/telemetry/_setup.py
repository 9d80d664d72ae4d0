"""Configure the OpenTelemetry SDK once per process: argument, then OTEL_* env, then default.

Default (no collector): spans appended as JSON lines to ``RUN_DIR/spans.jsonl``, metrics read
by a Prometheus reader (served as ``/metrics``). With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set,
traces and metrics also go over OTLP/HTTP (protobuf). ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` are honoured by ``Resource.create``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapprof._errors import ConfigError

log = logging.getLogger("swapprof.telemetry")

ENV_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"
ENV_FLUSH_TIMEOUT = "SWAPPROF_FLUSH_TIMEOUT"
ENV_TELEMETRY = "SWAPPROF_TELEMETRY"  # "0" turns swapprof's own SDK setup off
SPAN_FILE = "spans.jsonl"

SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SECONDS_HISTOGRAMS = (
    "swapprof.upgrade.phase.duration",
    "swapprof.upgrade.time_to_ready",
    "cpython.gc.duration",
)


@dataclass
class Telemetry:
    """The configured providers of this process and how to flush them."""

    tracer_provider: Any
    meter_provider: Any
    span_file: Path | None
    otlp_endpoint: str | None
    flush_timeout: float
    _closed: bool = field(default=False, repr=False)

    def flush(self, timeout: float | None = None) -> bool:
        """Export what is pending, within ``timeout`` seconds in all; never raises."""
        budget_ms = int(1000 * (self.flush_timeout if timeout is None else timeout))
        done = threading.Event()
        result = [False]

        def run() -> None:
            try:
                ok_t = self.tracer_provider.force_flush(budget_ms)
                ok_m = self.meter_provider.force_flush(budget_ms)
                result[0] = bool(ok_t and ok_m)
            except Exception:  # telemetry never raises into the host
                log.debug("flush failed", exc_info=True)
            finally:
                done.set()

        worker = threading.Thread(target=run, name="swapprof-flush", daemon=True)
        worker.start()
        done.wait(budget_ms / 1000 + 0.1)
        return result[0]

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, then stop exporters (bounded). Call before exit or exec; safe twice."""
        if self._closed:
            return True
        self._closed = True
        ok = self.flush(timeout)
        done = threading.Event()

        def run() -> None:
            try:
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown(timeout_millis=int(1000 * self.flush_timeout))
            except Exception:
                log.debug("shutdown failed", exc_info=True)
            finally:
                done.set()

        threading.Thread(target=run, name="swapprof-shutdown", daemon=True).start()
        done.wait(self.flush_timeout + 0.1)
        return ok


_current: Telemetry | None = None
_lock = threading.Lock()


def current() -> Telemetry | None:
    return _current


def configure(
    role: str,
    generation: int | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    span_file: str | os.PathLike[str] | None = None,
    prometheus: bool = True,
    flush_timeout: float | None = None,
    set_global: bool = True,
    env: Mapping[str, str] | None = None,
) -> Telemetry:
    """Build (once per process) the tracer and meter providers swapprof records into."""
    global _current
    env = os.environ if env is None else env
    with _lock:
        if _current is not None:
            return _current
        _current = _build(role, generation, run_dir, service_name, otlp_endpoint, span_file, prometheus,
                          flush_timeout, set_global, env)  # fmt: skip
        atexit.register(_current.shutdown)
        return _current


def _build(
    role: str,
    generation: int | None,
    run_dir: str | os.PathLike[str] | None,
    service_name: str | None,
    otlp_endpoint: str | None,
    span_file: str | os.PathLike[str] | None,
    prometheus: bool,
    flush_timeout: float | None,
    set_global: bool,
    env: Mapping[str, str],
) -> Telemetry:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from swapprof.telemetry._jsonl import JsonLinesSpanExporter

    if flush_timeout is None:
        try:
            flush_timeout = float(env.get(ENV_FLUSH_TIMEOUT, "2"))
        except ValueError:
            raise ConfigError(
                f"{ENV_FLUSH_TIMEOUT}={env[ENV_FLUSH_TIMEOUT]!r} is not a number of seconds"
            ) from None
    attributes: dict[str, Any] = {"process.pid": os.getpid(), "swapprof.role": role}
    if generation is not None:
        attributes["swapprof.generation"] = generation
    if not env.get(ENV_SERVICE_NAME):
        attributes["service.name"] = service_name or "swapprof"
    resource = Resource.create(attributes)
    tracer_provider = TracerProvider(resource=resource)
    path: Path | None = None
    if span_file is not None or run_dir is not None:
        path = Path(span_file) if span_file is not None else Path(run_dir or ".") / SPAN_FILE
        tracer_provider.add_span_processor(
            BatchSpanProcessor(JsonLinesSpanExporter(path), schedule_delay_millis=500)
        )
    endpoint = otlp_endpoint or env.get(ENV_TRACES_ENDPOINT) or env.get(ENV_OTLP_ENDPOINT) or None
    readers: list[Any] = []
    if endpoint:
        from swapprof.telemetry._otlp import otlp_metric_reader, otlp_span_processor

        tracer_provider.add_span_processor(otlp_span_processor(otlp_endpoint, flush_timeout))
        readers.append(otlp_metric_reader(otlp_endpoint, flush_timeout))
    if prometheus:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    views = [
        View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS))
        for name in SECONDS_HISTOGRAMS
    ]
    meter_provider = MeterProvider(resource=resource, metric_readers=readers, views=views)
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return Telemetry(tracer_provider, meter_provider, path, endpoint, flush_timeout)
