"""OpenTelemetry SDK setup for swapprof's processes, the embedded exporters, flush-before-exit."""

from swapprof.telemetry._jsonl import JsonLinesSpanExporter, read_spans
from swapprof.telemetry._setup import SECONDS_BUCKETS, SPAN_FILE, Telemetry, configure, current

__all__ = [
    "SECONDS_BUCKETS",
    "SPAN_FILE",
    "JsonLinesSpanExporter",
    "Telemetry",
    "configure",
    "current",
    "read_spans",
]
