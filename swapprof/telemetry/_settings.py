"""Settings of swapprof's telemetry: argument, then environment variable, then default.

=============================== ============================================ ===============
environment variable            meaning                                      default
=============================== ============================================ ===============
``SWAPPROF_TELEMETRY``          ``0`` turns swapprof's own SDK setup off      ``1``
``SWAPPROF_OTEL_GLOBAL``        ``1``: swapprof's SDK also becomes the        ``0``
                                process-global OTel provider (for the app)
``SWAPPROF_FLUSH_TIMEOUT``      seconds a flush before exit may take          ``2``
``SWAPPROF_SPAN_FILE_MAX_BYTES`` size at which ``spans.jsonl`` is rotated to  16 MiB
                                ``spans.jsonl.1`` (``0``: never rotate)
=============================== ============================================ ===============

``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``), ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` keep their OpenTelemetry meanings.
"""

from __future__ import annotations

from collections.abc import Mapping

from swapprof._errors import ConfigError

ENV_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"
ENV_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENV_TELEMETRY = "SWAPPROF_TELEMETRY"
ENV_OTEL_GLOBAL = "SWAPPROF_OTEL_GLOBAL"
ENV_FLUSH_TIMEOUT = "SWAPPROF_FLUSH_TIMEOUT"
ENV_SPAN_FILE_MAX_BYTES = "SWAPPROF_SPAN_FILE_MAX_BYTES"
# OTel's environment carrier for a trace context handed to a child process
ENV_TRACEPARENT = "TRACEPARENT"
ENV_TRACESTATE = "TRACESTATE"
DEFAULT_FLUSH_TIMEOUT = 2.0
DEFAULT_SPAN_FILE_MAX_BYTES = 16 * 1024 * 1024


def otel_global(value: bool | None, env: Mapping[str, str]) -> bool:
    """``value`` if given, else ``SWAPPROF_OTEL_GLOBAL`` (``0`` or ``1``), else off."""
    if value is not None:
        return bool(value)
    text = env.get(ENV_OTEL_GLOBAL, "").strip()
    if text in ("", "0"):
        return False
    if text == "1":
        return True
    raise ConfigError(f"{ENV_OTEL_GLOBAL}={text!r} must be 0 or 1")


def traces_endpoint(value: str | None, env: Mapping[str, str]) -> str | None:
    """Where traces go over OTLP: ``value``, else the traces endpoint, else the OTLP endpoint."""
    return value or env.get(ENV_TRACES_ENDPOINT) or env.get(ENV_OTLP_ENDPOINT) or None


def otel_global_unexported(env: Mapping[str, str]) -> str | None:
    """With ``otel_global``: why the app's spans would be recorded and sent nowhere (no OTLP
    endpoint in ``env``), or None. ``OTEL_TRACES_EXPORTER=none`` says that is meant."""
    if traces_endpoint(None, env):
        return None
    if env.get(ENV_TRACES_EXPORTER, "").strip().lower() == "none":
        return None
    return (
        f"--otel-global: neither {ENV_OTLP_ENDPOINT} nor {ENV_TRACES_ENDPOINT} is set, so the app's "
        f"spans go nowhere (its metrics still join /metrics); set one (a collector, e.g. "
        f"http://localhost:4318), or {ENV_TRACES_EXPORTER}=none to say that is meant"
    )


def flush_timeout(value: float | None, env: Mapping[str, str]) -> float:
    if value is None:
        text = env.get(ENV_FLUSH_TIMEOUT, "")
        try:
            value = float(text) if text.strip() else DEFAULT_FLUSH_TIMEOUT
        except ValueError:
            raise ConfigError(f"{ENV_FLUSH_TIMEOUT}={text!r} is not a number of seconds") from None
    if not value >= 0:
        raise ConfigError(f"flush_timeout must be a non-negative number of seconds, not {value!r}")
    return float(value)


def span_file_max_bytes(value: int | None, env: Mapping[str, str]) -> int:
    """Bytes at which the span file rotates; ``0`` means unbounded."""
    source = "span_file_max_bytes"
    if value is None:
        text = env.get(ENV_SPAN_FILE_MAX_BYTES, "").strip()
        source = f"{ENV_SPAN_FILE_MAX_BYTES}={text!r}"
        try:
            value = int(text) if text else DEFAULT_SPAN_FILE_MAX_BYTES
        except ValueError:
            raise ConfigError(f"{source} is not a whole number of bytes") from None
    if isinstance(value, bool) or value < 0:
        raise ConfigError(f"{source} must be a whole number of bytes >= 0 (0: no cap), not {value!r}")
    return int(value)


def telemetry_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``SWAPPROF_TELEMETRY=0`` turns swapprof's own telemetry off in every process."""
    import os

    return (os.environ if env is None else env).get(ENV_TELEMETRY, "1") != "0"
