"""The reference hot-restart server: a master that keeps the listeners and hands them from one
generation of the app to the next, with readiness, drain and rollback.

Attributes load on first use (PEP 562): a generation starts as ``python -m
swapprof.server._worker``, which imports this package first, and must not pay for the
master's modules at every spawn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swapprof._vocabulary import PHASES
    from swapprof.server._config import ServerConfig
    from swapprof.server._control import request as control_request
    from swapprof.server._master import Master, StartupError, serve
    from swapprof.server._process import ServerProcess

_LAZY = {
    "PHASES": ("swapprof._vocabulary", "PHASES"),
    "Master": ("swapprof.server._master", "Master"),
    "ServerConfig": ("swapprof.server._config", "ServerConfig"),
    "ServerProcess": ("swapprof.server._process", "ServerProcess"),
    "StartupError": ("swapprof.server._master", "StartupError"),
    "control_request": ("swapprof.server._control", "request"),
    "serve": ("swapprof.server._master", "serve"),
}

__all__ = ["PHASES", "Master", "ServerConfig", "ServerProcess", "StartupError", "control_request", "serve"]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'swapprof.server' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
