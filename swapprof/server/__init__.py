"""The reference hot-restart server: a master that keeps the listeners and hands them from one
generation of the app to the next, with readiness, drain and rollback."""

from swapprof.server._config import ServerConfig
from swapprof.server._control import request as control_request
from swapprof.server._master import Master, StartupError, serve
from swapprof.server._upgrade import PHASES

__all__ = ["PHASES", "Master", "ServerConfig", "StartupError", "control_request", "serve"]

from swapprof.server._process import ServerProcess

__all__ += ["ServerProcess"]
