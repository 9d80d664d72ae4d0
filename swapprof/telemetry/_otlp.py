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


def otlp_span_processor(endpoint: str | None, timeout: float) -> Any:
    """A batch processor to OTLP. ``endpoint`` None means: from OTEL_EXPORTER_OTLP_* variables."""
    _require()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    kwargs: dict[str, Any] = {"timeout": timeout}
    if endpoint:
        kwargs["endpoint"] = endpoint.rstrip("/") + "/v1/traces"
    return BatchSpanProcessor(
        OTLPSpanExporter(**kwargs), schedule_delay_millis=500, export_timeout_millis=int(timeout * 1000)
    )


def otlp_metric_reader(endpoint: str | None, timeout: float) -> Any:
    _require()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    kwargs: dict[str, Any] = {"timeout": timeout}
    if endpoint:
        kwargs["endpoint"] = endpoint.rstrip("/") + "/v1/metrics"
    return PeriodicExportingMetricReader(
        OTLPMetricExporter(**kwargs), export_interval_millis=10_000, export_timeout_millis=int(timeout * 1000)
    )
