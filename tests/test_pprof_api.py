"""Pins the public API of swapprof.pprof: adding a name is a decision, removing one a break."""

from __future__ import annotations

import inspect

import swapprof.pprof
from swapprof._errors import ConfigError, SwapprofError

PUBLIC = {
    "DEFAULT_FRAMES",
    "DEFAULT_HZ",
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_SECONDS",
    "ENV_HZ",
    "ENV_MAX_SECONDS",
    "ENV_TOKEN",
    "ENV_TRACEMALLOC",
    "JsonRoute",
    "PprofASGI",
    "PprofServer",
    "PprofWSGI",
    "Profile",
    "ProfileError",
    "ProfileFetchError",
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
}


def test_exported_names() -> None:
    assert set(swapprof.pprof.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(swapprof.pprof, name)


def test_error_tree() -> None:
    pp = swapprof.pprof
    assert issubclass(pp.ProfileError, SwapprofError)
    assert issubclass(pp.ProfileFormatError, ConfigError)
    for error in (pp.ProfilingInUseError, pp.ProfilerUnavailableError, pp.ProfileFetchError):
        assert issubclass(error, pp.ProfileError)


def test_settings_keywords_are_the_same_everywhere() -> None:
    keywords = ["token", "routes", "max_seconds", "hz", "tracemalloc"]
    for factory in (swapprof.pprof.asgi_app, swapprof.pprof.wsgi_app, swapprof.pprof.serve):
        params = inspect.signature(factory).parameters
        assert [p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY] == keywords
    assert inspect.signature(swapprof.pprof.serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(swapprof.pprof.serve).parameters["port"].default == 0
    assert (swapprof.pprof.DEFAULT_HZ, swapprof.pprof.DEFAULT_SECONDS) == (100, 30)


def test_optional_dependencies_are_not_imported() -> None:
    import subprocess
    import sys

    code = "import sys, swapprof.pprof; print(sorted(m for m in ('uvicorn', 'google.protobuf') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
