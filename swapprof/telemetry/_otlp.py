"""OTLP/HTTP (protobuf) exporters, bounded so an unreachable collector cannot stall anyone."""

from __future__ import annotations

from collections.abc import Mapping
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


def _exporter_args(
    endpoint: str | None, signal: str, env: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    """Where one signal goes, as the OTel spec resolves it, but from ``env`` (which need not be
    os.environ): the argument or ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``/v1/<signal>`` appended,
    else ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` as it is; neither: the exporter's default."""
    args: dict[str, Any] = {"timeout": timeout}
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if endpoint:
        args["endpoint"] = endpoint.rstrip("/") + f"/v1/{signal}"
    elif specific:
        args["endpoint"] = specific
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        args["endpoint"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + f"/v1/{signal}"
    return args


def otlp_span_processor(endpoint: str | None, timeout: float, env: Mapping[str, str]) -> Any:
    """A batch processor to OTLP. ``endpoint`` None means: from the OTEL_EXPORTER_OTLP_* settings."""
    _require()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(
        OTLPSpanExporter(**_exporter_args(endpoint, "traces", env, timeout)),
        schedule_delay_millis=500,
        export_timeout_millis=int(timeout * 1000),
    )


def otlp_metric_reader(endpoint: str | None, timeout: float, env: Mapping[str, str]) -> Any:
    _require()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(
        OTLPMetricExporter(**_exporter_args(endpoint, "metrics", env, timeout)),
        export_interval_millis=10_000,
        export_timeout_millis=int(timeout * 1000),
    )
