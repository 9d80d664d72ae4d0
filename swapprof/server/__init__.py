"""The reference hot-restart server: a master that keeps the listeners and hands them from one
generation of the app to the next, with readiness, drain and rollback.

Processes and their folders: the master (this folder's modules), a generation
(``generation/``, started as ``python -m swapprof.server.generation``) and the zygote
(``zygote/``). Names load on first use (PEP 562): a generation imports this package first and
must not pay for the master's modules at every spawn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swapprof.server._config import ServerConfig
    from swapprof.server._control import request as control_request
    from swapprof.server._master import serve

_LAZY = {
    "ServerConfig": ("swapprof.server._config", "ServerConfig"),
    "control_request": ("swapprof.server._control", "request"),
    "serve": ("swapprof.server._master", "serve"),
}

__all__ = ["ServerConfig", "control_request", "serve"]


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
