"""Pins the public API of swapprof.hooks: changing it must be a deliberate act."""

from __future__ import annotations

import inspect
import subprocess
import sys

import swapprof.hooks
from swapprof._errors import SwapprofError


def test_exported_members() -> None:
    assert swapprof.hooks.__all__ == [
        "DEFAULT_CAPACITY",
        "DEFAULT_TRACEMALLOC_FRAMES",
        "GC_PAUSE_BUCKETS",
        "AllocationSite",
        "GCMonitor",
        "GCPause",
        "HandoffRecorder",
        "ReloadError",
        "ReloadRecord",
        "ReloadSummary",
        "ReloadTracker",
        "StaleObject",
        "installed_monitor",
    ]
    for name in swapprof.hooks.__all__:
        assert hasattr(swapprof.hooks, name)
    assert issubclass(swapprof.hooks.ReloadError, SwapprofError)


def test_signatures() -> None:
    tracker = inspect.signature(swapprof.hooks.ReloadTracker)
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
    monitor = inspect.signature(swapprof.hooks.GCMonitor)
    assert list(monitor.parameters) == ["capacity", "meter_provider"]


def test_importing_the_package_loads_nothing_until_used() -> None:
    code = (
        "import sys, swapprof.hooks\n"
        "print(sorted(m for m in sys.modules if m.startswith('swapprof.hooks.')))\n"
        "swapprof.hooks.GCMonitor\n"
        "print('swapprof.hooks._gc' in sys.modules, 'swapprof.hooks._reload' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "True False"]
