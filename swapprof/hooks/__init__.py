"""Hooks usable in any server: in-place reload tracking and GC pause monitoring.

Nothing is installed on import: ``GCMonitor.install()`` adds the one gc callback, and a
``ReloadTracker`` starts tracemalloc only when it is created (and stops it on ``close()`` if it
started it). Names are imported on first use, so importing a sibling module (``_handoff``, in a
freshly spawned generation) does not pay for these.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swapprof.hooks._gc import DEFAULT_CAPACITY, GCMonitor, installed_monitor
    from swapprof.hooks._handoff import HandoffRecorder
    from swapprof.hooks._histogram import GC_PAUSE_BUCKETS
    from swapprof.hooks._memory import DEFAULT_TRACEMALLOC_FRAMES
    from swapprof.hooks._records import AllocationSite, ReloadRecord, ReloadSummary, StaleObject
    from swapprof.hooks._reload import ReloadError, ReloadTracker
    from swapprof.hooks._ring import GCPause

_WHERE = {
    "DEFAULT_CAPACITY": "_gc",
    "DEFAULT_TRACEMALLOC_FRAMES": "_memory",
    "GC_PAUSE_BUCKETS": "_histogram",
    "AllocationSite": "_records",
    "GCMonitor": "_gc",
    "GCPause": "_ring",
    "HandoffRecorder": "_handoff",
    "ReloadError": "_reload",
    "ReloadRecord": "_records",
    "ReloadSummary": "_records",
    "ReloadTracker": "_reload",
    "StaleObject": "_records",
    "installed_monitor": "_gc",
}

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_TRACEMALLOC_FRAMES",
    "GC_PAUSE_BUCKETS",
    "AllocationSite",
    "GCMonitor",
    "GCPause",
    "HandoffRecorder",
    "ReloadError",
    "ReloadRecord",
    "ReloadSummary",
    "ReloadTracker",
    "StaleObject",
    "installed_monitor",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
