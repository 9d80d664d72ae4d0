"""The embedded span file stays bounded: rotation at the cap, shared by writer processes, and
every span it loses is counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from swapprof.telemetry import JsonLinesSpanExporter, read_spans
from swapprof.telemetry._setup import DROPPED_SPANS, _count_drops

MAX_BYTES = 20_000
SPANS_PER_WRITER = 600

WRITER = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from swapprof.telemetry import JsonLinesSpanExporter

path, max_bytes, count, writer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("swapprof")
for i in range(count):
    with tracer.start_as_current_span(f"{writer}-{i}", attributes={"pad": "x" * (i % 50)}):
        pass
spans = memory.get_finished_spans()
exporter = JsonLinesSpanExporter(path, max_bytes=max_bytes)
sys.stdin.readline()  # start together
for start in range(0, len(spans), 7):
    exporter.export(spans[start : start + 7])
exporter.shutdown()
print(json.dumps({"dropped": exporter.dropped_by_reason, "rotations": exporter.rotations}))
"""


def _spans(count: int, pad: int = 0) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for i in range(count):
        with provider.get_tracer("swapprof").start_as_current_span(f"s{i}", attributes={"pad": "x" * pad}):
            pass
    return list(memory.get_finished_spans())


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_two_writer_processes_keep_the_files_bounded_and_account_for_every_span(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", WRITER, str(path), str(MAX_BYTES), str(SPANS_PER_WRITER)]
    writers = [
        subprocess.Popen([*cmd, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for name in ("a", "b")
    ]
    for writer in writers:  # both have built their spans: let them write at the same time
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    results = [json.loads(w.communicate(timeout=60)[0]) for w in writers]
    assert all(w.returncode == 0 for w in writers)

    assert path.stat().st_size <= MAX_BYTES
    assert (tmp_path / "spans.jsonl.1").stat().st_size <= MAX_BYTES
    kept = _lines(tmp_path / "spans.jsonl.1") + _lines(path)
    names = [json.loads(line)["name"] for line in kept]  # every line whole: no interleaving
    assert len(names) == len(set(names))
    rotated_out = sum(r["dropped"]["rotated_out"] for r in results)
    assert sum(r["rotations"] for r in results) >= 2
    assert all(r["dropped"]["too_large"] == r["dropped"]["write_error"] == 0 for r in results)
    assert len(kept) + rotated_out == 2 * SPANS_PER_WRITER  # nothing lost uncounted
    assert [s["name"] for s in read_spans(path)] == names  # the rotated file first


def test_a_span_larger_than_the_cap_is_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesSpanExporter(path, max_bytes=2000)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    _count_drops(meters, exporter)
    exporter.export(_spans(1, pad=5000) + _spans(2))
    exporter.shutdown()
    assert exporter.dropped == exporter.dropped_by_reason["too_large"] == 1
    assert [s["name"] for s in read_spans(path)] == ["s0", "s1"]
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        dict(p.attributes or {})["reason"]: p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == DROPPED_SPANS
        for p in m.data.data_points
        if isinstance(p, NumberDataPoint)
    }
    assert points == {"rotated_out": 0, "too_large": 1, "write_error": 0}
    meters.shutdown()


def test_a_writer_follows_a_rotation_made_by_another(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    first, second = JsonLinesSpanExporter(path, 3000), JsonLinesSpanExporter(path, 3000)
    while first.rotations == 0:
        first.export(_spans(1))
    second.export(_spans(1))  # must land in the new file, not in spans.jsonl.1
    assert len(_lines(path)) == 2
    first.shutdown()
    second.shutdown()


def test_no_cap_means_no_rotation(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = JsonLinesSpanExporter(path, max_bytes=0)
    exporter.export(_spans(50, pad=100))
    exporter.shutdown()
    assert len(_lines(path)) == 50 and not (tmp_path / "spans.jsonl.1").exists()


def test_an_unwritable_span_file_counts_its_losses_and_never_raises(tmp_path: Path) -> None:
    exporter = JsonLinesSpanExporter(tmp_path / "missing" / "spans.jsonl", max_bytes=1000)
    assert exporter.export(_spans(3)) is SpanExportResult.FAILURE
    assert exporter.dropped_by_reason == {"rotated_out": 0, "too_large": 0, "write_error": 3}
    exporter.shutdown()
