"""GC and reload telemetry through a local OTel SDK (the global providers are never set)."""

from __future__ import annotations

import gc
import importlib
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from swapprof.gc import GCMonitor
from swapprof.gc._histogram import GC_PAUSE_BUCKETS
from swapprof.reload import ReloadTracker

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reload_leak"


@dataclass
class Metrics:
    provider: MeterProvider
    reader: InMemoryMetricReader


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield Metrics(provider, reader)
    provider.shutdown()


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def leaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for source in EXAMPLE.glob("*.py"):
        shutil.copy(source, tmp_path / source.name)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "leaky_plugin" not in sys.modules
    yield importlib.import_module("leaky_plugin")
    for name in ("leaky_plugin", "plugin_registry"):
        sys.modules.pop(name, None)


def metrics_by_name(metrics: Metrics) -> dict[str, Any]:
    data = metrics.reader.get_metrics_data()
    assert data is not None
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def points(metric: Any) -> dict[tuple[tuple[str, Any], ...], Any]:
    return {tuple(sorted((p.attributes or {}).items())): p for p in metric.data.data_points}


def test_gc_metrics(metrics: Metrics) -> None:
    monitor = GCMonitor(meter_provider=metrics.provider)
    was = gc.isenabled()
    with monitor:
        gc.collect(2)
        gc.disable()  # no automatic collection between the export and the comparison
        try:
            found = metrics_by_name(metrics)
            stats = gc.get_stats()
        finally:
            if was:
                gc.enable()
    duration = found["cpython.gc.duration"]
    assert duration.unit == "s"
    full = points(duration)[(("cpython.gc.generation", 2),)]
    assert isinstance(full, HistogramDataPoint)
    assert full.count >= 1 and full.sum > 0 and tuple(full.explicit_bounds) == GC_PAUSE_BUCKETS
    for name, unit, key in (
        ("cpython.gc.collections", "{collection}", "collections"),
        ("cpython.gc.collected_objects", "{object}", "collected"),
        ("cpython.gc.uncollectable_objects", "{object}", "uncollectable"),
    ):
        assert found[name].unit == unit and found[name].data.is_monotonic
        for generation in range(3):
            point = points(found[name])[(("cpython.gc.generation", generation),)]
            assert isinstance(point, NumberDataPoint) and point.value == stats[generation][key]


def test_reload_metrics_and_spans(
    metrics: Metrics, spans: tuple[TracerProvider, InMemorySpanExporter], leaky: Any
) -> None:
    tracer_provider, exporter = spans
    with (
        GCMonitor(meter_provider=metrics.provider) as monitor,
        ReloadTracker(
            [leaky],
            gc_monitor=monitor,
            meter_provider=metrics.provider,
            tracer_provider=tracer_provider,
        ) as tracker,
    ):
        for _ in range(4):
            tracker.reload()
        tracker.track(lambda: (importlib.reload(leaky), gc.collect(2)))  # a pause inside the reload
        summary = tracker.summary()
        found = metrics_by_name(metrics)
    assert summary.leaking
    reloads = points(found["swapprof.reloads"])
    by_outcome = {dict(k)["outcome"]: p.value for k, p in reloads.items()}
    assert {dict(k)["module"] for k in reloads} == {"leaky_plugin"}
    assert sum(by_outcome.values()) == 5 and by_outcome.get("leaking", 0) >= 1
    assert found["swapprof.reload.memory.growth"].unit == "By"
    (growth,) = points(found["swapprof.reload.memory.growth"]).values()
    assert growth.value == pytest.approx(summary.bytes_per_reload)
    (stale,) = points(found["swapprof.reload.stale_versions"]).values()
    assert stale.value == summary.stale_versions == 5
    finished = [s for s in exporter.get_finished_spans() if s.name == "swapprof.reload"]
    assert len(finished) == 5
    last = finished[-1]
    assert last.attributes is not None
    assert last.attributes["swapprof.reload.module"] == "leaky_plugin"
    assert last.attributes["swapprof.reload.leaking"] is True
    assert last.attributes["swapprof.reload.stale_versions"] == 5
    assert any(e.name.startswith("gc gen 2, ") and e.name.endswith(", during reload") for e in last.events)


def test_failed_reload_is_counted_and_marked(
    metrics: Metrics, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = spans

    def broken() -> None:
        raise ValueError("syntax, say")

    with ReloadTracker(
        name="app",
        tracemalloc_frames=None,
        meter_provider=metrics.provider,
        tracer_provider=tracer_provider,
    ) as tracker:
        with pytest.raises(Exception, match="syntax, say"):
            tracker.track(broken)
        found = metrics_by_name(metrics)
    assert points(found["swapprof.reloads"])[(("module", "app"), ("outcome", "failed"))].value == 1
    (span,) = exporter.get_finished_spans()
    assert not span.status.is_ok and span.events[0].name == "exception"


class BrokenMeterProvider(ApiMeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no meter today")


class BrokenInstrumentsProvider(ApiMeterProvider):
    """Hands out a meter whose instruments raise when used."""

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        meter = NoOpMeterProvider().get_meter("x")

        class Exploding:
            def record(self, *a: Any, **k: Any) -> None:
                raise RuntimeError("record failed")

            def add(self, *a: Any, **k: Any) -> None:
                raise RuntimeError("add failed")

        meter.create_histogram = lambda *a, **k: Exploding()  # type: ignore[method-assign]
        meter.create_counter = lambda *a, **k: Exploding()  # type: ignore[method-assign]
        return meter


@pytest.mark.parametrize("provider_class", [BrokenMeterProvider, BrokenInstrumentsProvider])
def test_telemetry_never_raises_into_the_host(provider_class: type[ApiMeterProvider]) -> None:
    provider = provider_class()
    with GCMonitor(meter_provider=provider) as monitor:
        gc.collect()
        assert monitor.pauses()
        with ReloadTracker(tracemalloc_frames=None, count_objects=False, meter_provider=provider) as tracker:
            assert tracker.track(lambda: None).outcome == "ok"
