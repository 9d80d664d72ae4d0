"""Pins the public API: a change here is a change users see (adding a name is a decision,
removing one a break). Tests may import anything else from the private modules."""

from __future__ import annotations

from types import ModuleType

import pytest

import swapprof
import swapprof.dashboards
import swapprof.gate
import swapprof.pprof
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


SUBPACKAGES = {
    swapprof.gate: {
        "BenchConfig",
        "CommandTarget",
        "GateOptions",
        "LoadSpec",
        "ReferenceTarget",
        "Verdict",
        "bench",
        "compare",
        "load_results",
        "render_html",
        "render_junit",
        "render_markdown",
        "write_results",
    },
    swapprof.pprof: {
        "PprofServer",
        "Profile",
        "ProfileError",
        "ProfileFormatError",
        "ProfilerUnavailableError",
        "ProfilingInUseError",
        "asgi_app",
        "cpu_profile",
        "encode_profile",
        "flame_html",
        "goroutine_dump",
        "goroutine_profile",
        "heap_profile",
        "read_profile",
        "serve",
        "wsgi_app",
    },
    swapprof.dashboards: {
        "GrafanaAuthError",
        "GrafanaError",
        "GrafanaUnreachableError",
        "MissingExtraError",
        "build_dashboards",
        "build_rules",
        "export",
        "push",
    },
}


@pytest.mark.parametrize("package", list(SUBPACKAGES), ids=lambda m: m.__name__)
def test_subpackage_exports(package: ModuleType) -> None:
    assert set(package.__all__) == SUBPACKAGES[package]
    for name in package.__all__:
        assert getattr(package, name) is not None
    # nothing public beyond __all__: no leftover re-exports (private modules are fine)
    extra = {n for n in vars(package) if not n.startswith("_")} - set(package.__all__)
    assert extra == set()


@pytest.mark.parametrize("package", list(SUBPACKAGES), ids=lambda m: m.__name__)
def test_subpackage_errors_are_in_the_one_tree(package: ModuleType) -> None:
    errors = [
        v
        for v in map(package.__dict__.get, package.__all__)
        if isinstance(v, type) and issubclass(v, Exception)
    ]
    assert errors or package is swapprof.gate
    for error in errors:
        assert issubclass(error, swapprof.SwapprofError), error
