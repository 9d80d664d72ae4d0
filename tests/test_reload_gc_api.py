"""The reload and GC packages as users import them: signatures, and lazy imports (the names are
pinned in test_public_api)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import swapprof.gc
import swapprof.reload
import swapprof.telemetry
from swapprof._errors import SwapprofError


def test_exported_members() -> None:
    # the names themselves are pinned in test_public_api's one table
    assert issubclass(swapprof.reload.ReloadError, SwapprofError)
    assert swapprof.telemetry.HandoffRecorder is swapprof.HandoffRecorder


def test_signatures() -> None:
    tracker = inspect.signature(swapprof.reload.ReloadTracker)
    assert list(tracker.parameters) == [
        "modules",
        "name",
        "tracemalloc_frames",
        "gc_monitor",
        "confidence",
        "warmup",
        "min_samples",
        "threshold_bytes",
        "top",
        "referrer_paths",
        "count_objects",
        "history",
        "meter_provider",
        "tracer_provider",
    ]
    monitor = inspect.signature(swapprof.gc.GCMonitor)
    assert list(monitor.parameters) == ["capacity", "meter_provider"]


def test_importing_the_packages_loads_nothing_until_used() -> None:
    code = (
        "import sys, swapprof.gc, swapprof.reload, swapprof.telemetry\n"
        "print(sorted(m for m in sys.modules if m.startswith(('swapprof.gc.', 'swapprof.reload.',"
        " 'swapprof.telemetry.', 'opentelemetry'))))\n"
        "swapprof.gc.GCMonitor\n"
        "print('swapprof.gc._monitor' in sys.modules, 'swapprof.reload._tracker' in sys.modules)\n"
        "swapprof.telemetry.HandoffRecorder\n"
        "print('opentelemetry.sdk' in sys.modules, 'swapprof.gc._monitor' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "True False", "False True"]


def test_gc_package_does_not_shadow_the_stdlib() -> None:
    from swapprof.gc import _monitor

    assert _monitor.gc is sys.modules["gc"]
    assert hasattr(_monitor.gc, "callbacks")
