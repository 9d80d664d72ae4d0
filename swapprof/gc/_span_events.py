"""GC pauses as events on an OpenTelemetry span ("gc gen 2, 12.3 ms, during import")."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import Span

from swapprof.gc._ring import GCPause
from swapprof.telemetry._api import guarded


def pause_event_name(pause: GCPause, during: str = "") -> str:
    name = f"gc gen {pause.generation}, {pause.duration_s * 1e3:.1f} ms"
    return f"{name}, during {during}" if during else name


def add_pause_events(
    span: Span, pauses: Sequence[GCPause], during: str = "", min_duration_s: float = 0.0, limit: int = 32
) -> int:
    """Add the ``limit`` longest ``pauses`` of at least ``min_duration_s`` to ``span``, in time order.

    Returns the number of events added; telemetry errors are logged, never raised.
    """
    chosen = [p for p in pauses if p.duration_s >= min_duration_s]
    chosen = sorted(
        sorted(chosen, key=lambda p: p.duration_s, reverse=True)[: max(limit, 0)], key=lambda p: p.start_ns
    )
    added = 0
    with guarded("adding GC pause events"):
        for p in chosen:
            span.add_event(
                pause_event_name(p, during),
                attributes={
                    "cpython.gc.generation": p.generation,
                    "cpython.gc.duration": p.duration_s,
                    "cpython.gc.collected_objects": p.collected,
                    "cpython.gc.uncollectable_objects": p.uncollectable,
                },
                timestamp=p.start_unix_ns,
            )
            added += 1
    return added
