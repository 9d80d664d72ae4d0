"""swapprof's telemetry: the upgrade recorder, SDK setup, the embedded exporters, flush-before-exit.

Names are imported on first use (PEP 562): a freshly spawned generation imports
``HandoffRecorder`` (the OTel API only) and must not pay for the SDK until it configures it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
