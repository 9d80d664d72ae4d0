"""OTLP/HTTP (protobuf) exporters, bounded so an unreachable collector cannot stall anyone."""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install 'swapprof[otlp]'  (or: pip install opentelemetry-exporter-otlp-proto-http)"


def _require() -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError as exc:
        from swapprof._errors import ConfigError

        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is missing: {INSTALL_HINT}"
        ) from exc


def _exporter_args(endpoint: str | None, signal_path: str, timeout: float) -> dict[str, Any]:
    """An explicit endpoint gets the signal's path appended, as OTEL_EXPORTER_OTLP_ENDPOINT does;
    without one the exporter reads its OTEL_EXPORTER_OTLP_* variables itself."""
    args: dict[str, Any] = {"timeout": timeout}
    if endpoint:
        args["endpoint"] = endpoint.rstrip("/") + signal_path
    return args


def otlp_span_processor(endpoint: str | None, timeout: float) -> Any:
    """A batch processor to OTLP. ``endpoint`` None means: from OTEL_EXPORTER_OTLP_* variables."""
    _require()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(
        OTLPSpanExporter(**_exporter_args(endpoint, "/v1/traces", timeout)),
        schedule_delay_millis=500,
        export_timeout_millis=int(timeout * 1000),
    )


def otlp_metric_reader(endpoint: str | None, timeout: float) -> Any:
    _require()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(
        OTLPMetricExporter(**_exporter_args(endpoint, "/v1/metrics", timeout)),
        export_interval_millis=10_000,
        export_timeout_millis=int(timeout * 1000),
    )
