"""In-place reload tracking: memory growth per reload, stale versions, and a leak verdict.

``ReloadTracker`` starts tracemalloc only when it is created (and stops it on ``close()`` if it
started it); nothing is installed on import. Names are imported on first use (PEP 562), so a
generation that imports a sibling module does not pay for OpenTelemetry or tracemalloc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapprof._lazy import lazy as _lazy_names

if TYPE_CHECKING:
    from swapprof.reload._records import AllocationSite, ReloadRecord, ReloadSummary, StaleObject
    from swapprof.reload._tracker import ReloadError, ReloadTracker

_WHERE = {
    "AllocationSite": "_records",
    "ReloadError": "_tracker",
    "ReloadRecord": "_records",
    "ReloadSummary": "_records",
    "ReloadTracker": "_tracker",
    "StaleObject": "_records",
}

__all__ = [
    "AllocationSite",
    "ReloadError",
    "ReloadRecord",
    "ReloadSummary",
    "ReloadTracker",
    "StaleObject",
]


__getattr__, __dir__ = _lazy_names(__name__, __all__, _WHERE)
