"""swapprof.pprof's API shape: the error tree and the settings keywords (the names are pinned in
test_public_api)."""

from __future__ import annotations

import inspect

import swapprof.pprof
from swapprof._errors import ConfigError, SwapprofError
from swapprof.pprof._cpu import DEFAULT_HZ
from swapprof.pprof._errors import ProfileFetchError
from swapprof.pprof._settings import DEFAULT_SECONDS


def test_error_tree() -> None:
    pp = swapprof.pprof
    assert issubclass(pp.ProfileError, SwapprofError)
    assert issubclass(pp.ProfileFormatError, ConfigError)
    for error in (pp.ProfilingInUseError, pp.ProfilerUnavailableError, ProfileFetchError):
        assert issubclass(error, pp.ProfileError)


def test_settings_keywords_are_the_same_everywhere() -> None:
    keywords = ["token", "routes", "max_seconds", "hz", "tracemalloc"]
    for factory in (swapprof.pprof.asgi_app, swapprof.pprof.wsgi_app, swapprof.pprof.serve):
        params = inspect.signature(factory).parameters
        assert [p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY] == keywords
    assert inspect.signature(swapprof.pprof.serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(swapprof.pprof.serve).parameters["port"].default == 0
    assert (DEFAULT_HZ, DEFAULT_SECONDS) == (100, 30)


def test_optional_dependencies_are_not_imported() -> None:
    import subprocess
    import sys

    code = "import sys, swapprof.pprof; print(sorted(m for m in ('uvicorn', 'google.protobuf') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
