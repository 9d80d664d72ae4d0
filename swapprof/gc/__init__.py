"""The GC pause monitor: every collection's pause, in a ring buffer, a histogram and OTel metrics.

Nothing is installed on import: ``GCMonitor.install()`` adds the one ``gc.callbacks`` entry and
``uninstall()`` removes it. (Inside this package ``import gc`` is still the standard library's:
imports are absolute.) Names are imported on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapprof._lazy import lazy as _lazy_names

if TYPE_CHECKING:
    from swapprof.gc._monitor import GCMonitor, installed_monitor
    from swapprof.gc._ring import GCPause

_WHERE = {
    "GCMonitor": "_monitor",
    "GCPause": "_ring",
    "installed_monitor": "_monitor",
}

__all__ = [
    "GCMonitor",
    "GCPause",
    "installed_monitor",
]


__getattr__, __dir__ = _lazy_names(__name__, __all__, _WHERE)
