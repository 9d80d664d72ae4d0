"""Pins the public API: a change here is a change users see."""

from __future__ import annotations

import swapprof
import swapprof.gate
import swapprof.server


def test_top_level_exports() -> None:
    expected = {
        "ConfigError",
        "ControlError",
        "GCMonitor",
        "HandoffRecorder",
        "ReloadError",
        "ReloadTracker",
        "ListenerError",
        "NotRunningError",
        "SwapprofError",
        "UpgradeError",
        "__version__",
    }
    assert expected == set(swapprof.__all__)
    for name in swapprof.__all__:
        assert getattr(swapprof, name) is not None


def test_server_exports() -> None:
    assert set(swapprof.server.__all__) == {
        "PHASES",
        "Master",
        "ServerConfig",
        "ServerProcess",
        "StartupError",
        "control_request",
        "serve",
    }
    assert swapprof.server.PHASES == (
        "requested",
        "spawn",
        "import",
        "ready",
        "switch",
        "drain",
        "exit",
        "rollback",
    )


def test_errors_form_one_tree() -> None:
    for name in ("ConfigError", "ControlError", "ListenerError", "NotRunningError", "UpgradeError"):
        assert issubclass(getattr(swapprof, name), swapprof.SwapprofError)
