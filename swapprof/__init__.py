"""swapprof: make hot updates of Python network services observable.

What a user needs: ``serve(ServerConfig(app))`` (the hot-restart server, also ``swapprof serve``),
``ReloadTracker`` (in-place reloads and their memory growth), ``GCMonitor`` (GC pauses),
``HandoffRecorder`` (one trace per upgrade, in any server), and the errors. The rest lives in
``swapprof.pprof``, ``swapprof.gate``, ``swapprof.dashboards``, ``swapprof.telemetry`` and
``swapprof.testing``.

Names load on first use (PEP 562): every generation imports this package first, and must not
pay for OpenTelemetry at spawn time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapprof._errors import (
    ConfigError,
    ControlError,
    ListenerError,
    NotRunningError,
    StartupError,
    SwapprofError,
    UpgradeError,
)
from swapprof._lazy import lazy as _lazy_names
from swapprof._version import __version__

if TYPE_CHECKING:
    from swapprof.gc import GCMonitor
    from swapprof.reload import ReloadError, ReloadTracker
    from swapprof.server import ServerConfig, serve
    from swapprof.telemetry import HandoffRecorder

_LAZY = {
    "HandoffRecorder": "swapprof.telemetry",
    "GCMonitor": "swapprof.gc",
    "ReloadError": "swapprof.reload",
    "ReloadTracker": "swapprof.reload",
    "ServerConfig": "swapprof.server",
    "serve": "swapprof.server",
}

__all__ = [
    "ConfigError",
    "ControlError",
    "GCMonitor",
    "HandoffRecorder",
    "ListenerError",
    "NotRunningError",
    "ReloadError",
    "ReloadTracker",
    "ServerConfig",
    "StartupError",
    "SwapprofError",
    "UpgradeError",
    "__version__",
    "serve",
]


__getattr__, __dir__ = _lazy_names(__name__, __all__, _LAZY)
