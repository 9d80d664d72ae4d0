"""The GC pause monitor: every collection's pause, in a ring buffer, a histogram and OTel metrics.

Nothing is installed on import: ``GCMonitor.install()`` adds the one ``gc.callbacks`` entry and
``uninstall()`` removes it. (Inside this package ``import gc`` is still the standard library's:
imports are absolute.) Names are imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
