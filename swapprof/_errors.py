"""Typed errors raised by swapprof.

The tree (every error swapprof raises on purpose; where it is public in brackets)::

    SwapprofError                         [swapprof]
     ├── ConfigError                      bad argument or environment value (the CLI exits 2)
     │    └── ProfileFormatError          not a (gzipped) profile.proto [swapprof.pprof]
     ├── ListenerError                    a listener could not be bound or inherited
     ├── ControlError                     the control socket is missing, refused or answered badly
     │    └── NotRunningError             no master runs in the run directory
     ├── UpgradeError                     an upgrade ended in rollback (carries the outcome record)
     │    └── StartupError                the first generation never became ready: the master does not start
     ├── SpawnError                       a generation's interpreter could not be started (internal)
     ├── ZygoteError                      the zygote refused or failed (internal: the upgrade execs instead)
     ├── WorkerUnreachableError           a worker's private endpoint did not answer (internal: the
     │                                    master's /metrics serves what it has and counts it)
     ├── ReloadError                      a tracked in-place reload raised or could not run [swapprof]
     ├── ProfileError                     a profile could not be collected or fetched [swapprof.pprof]
     │    ├── ProfilingInUseError         another CPU profile runs (HTTP 500, like Go)
     │    ├── ProfilerUnavailableError    py-spy missing or not permitted, tracemalloc off (HTTP 501)
     │    └── ProfileFetchError           ``swapprof profile URL`` got an error answer or none (CLI only)
     ├── GrafanaError                     Grafana answered with an error [swapprof.dashboards]
     │    ├── GrafanaAuthError            401 / 403: the token is missing, wrong or lacks a role
     │    └── GrafanaUnreachableError     no connection, DNS failure or timeout
     └── MissingExtraError                grafana-client is not installed (also an ImportError; the
                                          message is the exact ``pip install``) [swapprof.dashboards]

Defined here: SwapprofError down to StartupError; the others beside the code that raises them
(``pprof/_errors.py``, ``dashboards/_errors.py``, ``server/master/_spawn.py``,
``server/master/_zygote_client.py``, ``server/master/_worker_http.py``, ``reload/_tracker.py``). Library code raises these and never exits;
only ``swapprof.cli`` turns them into exit codes (ConfigError: 2, any other: 1).
"""

from __future__ import annotations

from typing import Any


class SwapprofError(Exception):
    """Base of every error swapprof raises on purpose."""


class ConfigError(SwapprofError, ValueError):
    """An argument or environment value is invalid; the message says which and why."""


class ListenerError(SwapprofError, OSError):
    """A listening socket could not be bound, inherited or described."""


class ControlError(SwapprofError):
    """The master's control socket could not be used."""


class NotRunningError(ControlError):
    """No master answers in the given run directory."""


class UpgradeError(SwapprofError):
    """An upgrade was rolled back; ``record`` holds the outcome, reason and phase timings."""

    def __init__(self, message: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.record = record or {}


class StartupError(UpgradeError):
    """The first generation never became ready; the master does not start."""
