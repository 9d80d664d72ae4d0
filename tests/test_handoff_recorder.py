"""HandoffRecorder on its own: phases as spans of one trace, carried to a child through env."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from swapprof.telemetry import HandoffRecorder


@pytest.fixture
def providers() -> tuple[TracerProvider, MeterProvider, InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return tracer_provider, MeterProvider(metric_readers=[reader]), exporter, reader


def test_phases_are_children_of_one_root_and_fill_the_histogram(providers) -> None:  # type: ignore[no-untyped-def]
    tp, mp, exporter, reader = providers
    recorder = HandoffRecorder.start(
        attributes={"swapprof.trigger": "test"}, tracer_provider=tp, meter_provider=mp
    )
    with recorder.phase("spawn", pid=123):
        pass
    with pytest.raises(RuntimeError), recorder.phase("import"):
        raise RuntimeError("boom")
    recorder.set_outcome("rolled_back", "import_error")
    recorder.end()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"swapprof.upgrade", "spawn", "import"}
    root = spans["swapprof.upgrade"]
    assert {s.context.trace_id for s in spans.values()} == {root.context.trace_id}
    assert spans["spawn"].parent.span_id == root.context.span_id
    assert spans["spawn"].attributes["pid"] == 123
    assert spans["import"].status.status_code.name == "ERROR"
    assert root.attributes["swapprof.outcome"] == "rolled_back" and root.status.status_code.name == "ERROR"
    data = reader.get_metrics_data()
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    hist = metrics["swapprof.upgrade.phase.duration"]
    assert hist.unit == "s"
    assert {dict(p.attributes)["phase"] for p in hist.data.data_points} == {"spawn", "import"}
    counts = {
        tuple(sorted(dict(p.attributes).items())): p.value
        for p in metrics["swapprof.upgrades"].data.data_points
    }
    assert counts == {(("outcome", "rolled_back"), ("reason", "import_error")): 1}


def test_unknown_phase_is_refused(providers) -> None:  # type: ignore[no-untyped-def]
    tp, mp, _, _ = providers
    recorder = HandoffRecorder.start(tracer_provider=tp, meter_provider=mp)
    with pytest.raises(ValueError, match="unknown phase 'warmup'"):
        recorder.record_phase("warmup", 1, 2)


def test_child_continues_the_trace_through_traceparent(providers) -> None:  # type: ignore[no-untyped-def]
    tp, mp, _, _ = providers
    recorder = HandoffRecorder.start(tracer_provider=tp, meter_provider=mp)
    env = recorder.child_env({"PATH": "/usr/bin:/bin"})
    assert env["TRACEPARENT"].startswith("00-" + recorder.trace_id)
    code = "from swapprof.telemetry import HandoffRecorder\nprint(HandoffRecorder.from_env().trace_id)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == recorder.trace_id
    recorder.end()


def test_a_broken_sdk_never_raises_into_the_host() -> None:
    class Broken:
        def get_tracer(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError("sdk down")

    for recorder in (
        HandoffRecorder.start(tracer_provider=Broken(), meter_provider=Broken()),
        HandoffRecorder.start(),
    ):
        with recorder.phase("spawn"):
            pass
        recorder.record_phase("ready", 10, 5)  # end before start is clamped, not an error
        recorder.set_outcome("success")
        recorder.end()
        assert recorder.child_env({}) == {} or "TRACEPARENT" not in recorder.child_env({})
