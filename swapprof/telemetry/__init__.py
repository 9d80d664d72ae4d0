"""swapprof's telemetry: the upgrade recorder, SDK setup, the embedded exporters, flush-before-exit.

Names are imported on first use (PEP 562): a freshly spawned generation imports
``HandoffRecorder`` (the OTel API only) and must not pay for the SDK until it configures it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapprof._lazy import lazy as _lazy_names

if TYPE_CHECKING:
    from swapprof.telemetry._handoff import HandoffRecorder
    from swapprof.telemetry._jsonl import JsonLinesSpanExporter, read_spans
    from swapprof.telemetry._setup import Telemetry, configure, current

_WHERE = {
    "HandoffRecorder": "_handoff",
    "JsonLinesSpanExporter": "_jsonl",
    "Telemetry": "_setup",
    "configure": "_setup",
    "current": "_setup",
    "read_spans": "_jsonl",
}

__all__ = [
    "HandoffRecorder",
    "JsonLinesSpanExporter",
    "Telemetry",
    "configure",
    "current",
    "read_spans",
]


__getattr__, __dir__ = _lazy_names(__name__, __all__, _WHERE)
