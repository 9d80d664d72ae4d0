"""Pins the public API: a change here is a change users see (adding a name is a decision,
removing one a break). Tests may import anything else from the private modules."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

import swapprof

EXPORTS = {
    "swapprof": {
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
    },
    "swapprof.server": {"ServerConfig", "control_request", "serve"},
    "swapprof.testing": {"ServerProcess"},
    "swapprof.integrations": set(),
    "swapprof.reload": {
        "AllocationSite",
        "ReloadError",
        "ReloadRecord",
        "ReloadSummary",
        "ReloadTracker",
        "StaleObject",
    },
    "swapprof.gc": {"GCMonitor", "GCPause", "installed_monitor"},
    "swapprof.telemetry": {
        "HandoffRecorder",
        "JsonLinesSpanExporter",
        "Telemetry",
        "configure",
        "current",
        "read_spans",
    },
    "swapprof.gate": {
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
    "swapprof.pprof": {
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
        "merge_profiles",
        "read_profile",
        "serve",
        "wsgi_app",
    },
    "swapprof.dashboards": {
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
"""Every public ``__all__`` of swapprof, in one table: module -> the names users call."""
PACKAGES = [importlib.import_module(name) for name in EXPORTS]


def test_every_public_package_is_pinned() -> None:
    """A package without a leading underscore anywhere in its name is public: it is in the table."""
    import pkgutil

    public = {
        info.name
        for info in pkgutil.walk_packages(swapprof.__path__, "swapprof.")
        if info.ispkg and not any(part.startswith("_") for part in info.name.split("."))
    }
    internal = {"swapprof.server.master", "swapprof.server.generation", "swapprof.server.zygote"}
    assert public - internal | {"swapprof"} == set(EXPORTS)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda m: m.__name__)
def test_exports(package: ModuleType) -> None:
    assert set(package.__all__) == EXPORTS[package.__name__]
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_process_folders_export_nothing() -> None:
    """The master's, a generation's and the zygote's modules are internal: no __all__ at all."""
    for name in ("swapprof.server.master", "swapprof.server.generation", "swapprof.server.zygote"):
        assert not hasattr(importlib.import_module(name), "__all__")


@pytest.mark.parametrize("package", PACKAGES, ids=lambda m: m.__name__)
def test_nothing_public_beyond_all(package: ModuleType) -> None:
    # nothing public beyond __all__: no leftover re-exports (private modules are fine, and so are
    # subpackages, which become attributes of their parent once imported)
    public = {n for n, v in vars(package).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    extra = public - set(package.__all__) - {"annotations", "TYPE_CHECKING"}
    assert extra == set()


@pytest.mark.parametrize("package", PACKAGES, ids=lambda m: m.__name__)
def test_exported_errors_are_in_the_one_tree(package: ModuleType) -> None:
    errors = [
        v
        for v in (getattr(package, name) for name in package.__all__)
        if isinstance(v, type) and issubclass(v, Exception)
    ]
    assert errors or package.__name__ not in ("swapprof", "swapprof.pprof", "swapprof.dashboards")
    for error in errors:
        assert issubclass(error, swapprof.SwapprofError), error
