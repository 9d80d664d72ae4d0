"""swapprof's telemetry next to the application's own OpenTelemetry: separate providers.

Real SDK providers and a real OTLP/HTTP receiver on port 0; the process-global providers are
reset and restored around each test by the ``otel_globals`` fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from swapprof._errors import ConfigError
from swapprof.telemetry import HandoffRecorder, configure, current, read_spans
from swapprof.telemetry._settings import ENV_OTEL_GLOBAL, ENV_SPAN_FILE_MAX_BYTES
from tests._helpers import wait_for
from tests._otlp_receiver import OTLPReceiver

pytestmark = pytest.mark.usefixtures("otel_globals")


def _upgrade_and_app_span() -> str:
    """One swapprof upgrade phase and one span of "the app" (an instrumentation's tracer)."""
    recorder = HandoffRecorder.start(attributes={"swapprof.trigger": "test"})
    with recorder.phase("spawn"):
        pass
    recorder.set_outcome("success")
    recorder.end()
    with trace.get_tracer("opentelemetry.instrumentation.asgi").start_as_current_span("GET /items"):
        pass
    assert recorder.trace_id is not None
    return recorder.trace_id


def _names(path: Path) -> set[str]:
    return {span["name"] for span in read_spans(path)}


def test_default_sets_no_global_provider_and_records_into_its_own(tmp_path: Path) -> None:
    telemetry = configure("master", span_file=tmp_path / "spans.jsonl", prometheus=False, env={})
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not isinstance(metrics.get_meter_provider(), MeterProvider)
    assert current() is telemetry and telemetry.app_tracer_provider is None
    _upgrade_and_app_span()
    assert telemetry.flush()
    assert _names(tmp_path / "spans.jsonl") == {"swapprof.upgrade", "spawn"}


def test_a_global_provider_set_by_the_app_is_left_alone_even_with_otel_global(tmp_path: Path) -> None:
    app_spans = InMemorySpanExporter()
    app_tracing = TracerProvider()
    app_tracing.add_span_processor(SimpleSpanProcessor(app_spans))
    app_metrics = MeterProvider()
    trace.set_tracer_provider(app_tracing)
    metrics.set_meter_provider(app_metrics)
    telemetry = configure(
        "generation", 3, span_file=tmp_path / "spans.jsonl", prometheus=False, otel_global=True, env={}
    )
    assert trace.get_tracer_provider() is app_tracing
    assert metrics.get_meter_provider() is app_metrics
    assert telemetry.app_tracer_provider is None
    _upgrade_and_app_span()
    assert telemetry.flush()
    assert [s.name for s in app_spans.get_finished_spans()] == ["GET /items"]  # not swapprof's
    assert _names(tmp_path / "spans.jsonl") == {"swapprof.upgrade", "spawn"}  # not the app's
    app_tracing.shutdown()
    app_metrics.shutdown()


def test_otel_global_sends_app_spans_over_otlp_but_never_into_the_span_file(tmp_path: Path) -> None:
    with OTLPReceiver() as receiver:
        env = {ENV_OTEL_GLOBAL: "1", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        telemetry = configure("generation", 4, span_file=tmp_path / "spans.jsonl", prometheus=False, env=env)
        assert trace.get_tracer_provider() is telemetry.app_tracer_provider is not None
        assert telemetry.app_tracer_provider is not telemetry.tracer_provider
        assert metrics.get_meter_provider() is telemetry.meter_provider
        trace_id = _upgrade_and_app_span()
        assert telemetry.flush(5.0)
        over_otlp = wait_for(
            lambda: {s["name"] for s in receiver.spans} >= {"GET /items", "spawn"} and receiver.spans,
            timeout=10,
            what="spans over OTLP",
        )
    assert {s["name"] for s in over_otlp if s["trace_id"] == trace_id} == {"swapprof.upgrade", "spawn"}
    assert _names(tmp_path / "spans.jsonl") == {"swapprof.upgrade", "spawn"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (ENV_OTEL_GLOBAL, "yes"),
        (ENV_OTEL_GLOBAL, "2"),
        (ENV_SPAN_FILE_MAX_BYTES, "16M"),
        (ENV_SPAN_FILE_MAX_BYTES, "-1"),
    ],
)
def test_invalid_settings_are_config_errors(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        configure("master", span_file=tmp_path / "spans.jsonl", prometheus=False, env={name: value})
    assert current() is None


def test_a_tracker_made_before_configure_reports_to_swapprofs_provider(tmp_path: Path) -> None:
    """An app creates its ReloadTracker at import time; swapprof's server configures its SDK
    only after READY: the tracker's reloads must still reach swapprof's /metrics."""
    import sys

    from prometheus_client import generate_latest

    from swapprof.reload import ReloadTracker

    module = tmp_path / "made_early.py"
    module.write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import made_early  # type: ignore[import-not-found]

        with ReloadTracker([made_early], tracemalloc_frames=1) as tracker:
            telemetry = configure("generation", 1, span_file=tmp_path / "spans.jsonl", env={})
            try:
                tracker.reload()
                text = generate_latest().decode()
                assert 'swapprof_reloads_total{module="made_early"' in text, text[:2000]
            finally:
                telemetry.shutdown()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("made_early", None)
