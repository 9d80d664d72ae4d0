"""The reference hot-restart server: a master that keeps the listeners and hands them from one
generation of the app to the next, with readiness, drain and rollback.

One folder per process: ``master/``, ``generation/`` (``python -m swapprof.server.generation``)
and ``zygote/`` (``python -m swapprof.server.zygote``). This folder holds what more than one of
them (or the CLI) uses: the settings (``_config``), the master-to-generation contract
(``_contract``), the run directory (``_rundir``), listeners (``_fds``), sd_notify (``_notify``),
the control-socket client (``_control``), the serve/ctl commands (``_cli``) and the demo app. Names load on first use (PEP 562): a generation imports this package first and
must not pay for the master's modules at every spawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapprof._lazy import lazy as _lazy_names

if TYPE_CHECKING:
    from swapprof.server._config import ServerConfig
    from swapprof.server._control import request as control_request
    from swapprof.server.master._master import serve

_LAZY = {
    "ServerConfig": "_config",
    "control_request": "_control:request",
    "serve": "swapprof.server.master._master",
}

__all__ = ["ServerConfig", "control_request", "serve"]


__getattr__, __dir__ = _lazy_names(__name__, __all__, _LAZY)
