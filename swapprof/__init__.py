"""swapprof: make hot updates of Python network services observable."""

from swapprof._errors import (
    ConfigError,
    ControlError,
    ListenerError,
    NotRunningError,
    SwapprofError,
    UpgradeError,
)
from swapprof._version import __version__
from swapprof.hooks._handoff import HandoffRecorder

__all__ = [
    "ConfigError",
    "ControlError",
    "HandoffRecorder",
    "ListenerError",
    "NotRunningError",
    "SwapprofError",
    "UpgradeError",
    "__version__",
]
