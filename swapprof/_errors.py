"""Typed errors raised by swapprof.

The tree::

    SwapprofError
     ├── ConfigError          bad argument or environment value (the CLI exits 2)
     ├── ListenerError        a listener could not be bound or inherited
     ├── ControlError         the control socket is missing, refused or answered badly
     │    └── NotRunningError no master runs in the run directory
     └── UpgradeError         an upgrade ended in rollback (carries the outcome record)
          └── StartupError    the first generation never became ready: the master does not start

Library code raises these and never exits; only ``swapprof.cli`` turns them into exit codes.
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
