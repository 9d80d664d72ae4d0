"""ReloadTracker against real reloads of modules written to tmp_path, with real tracemalloc."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import textwrap
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from swapprof._errors import ConfigError, SwapprofError
from swapprof.reload import ReloadError, ReloadTracker

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reload_leak"
PAYLOAD = 200_000  # bytes each example version allocates (PAYLOAD_BYTES in the example)
RELOADS = 6

Importer = Callable[[str], ModuleType]


@pytest.fixture
def importer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Importer]:
    """Import modules from tmp_path (the example's files copied there); forget them afterwards."""
    for source in EXAMPLE.glob("*.py"):
        shutil.copy(source, tmp_path / source.name)
    monkeypatch.syspath_prepend(str(tmp_path))
    imported: list[str] = []

    def load(name: str) -> ModuleType:
        assert name not in sys.modules, f"{name} is already imported from elsewhere"
        imported.append(name)
        return importlib.import_module(name)

    yield load
    for name in [*imported, "plugin_registry"]:
        sys.modules.pop(name, None)


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


def test_leaky_example_is_leaking_by_its_payload(importer: Importer) -> None:
    leaky = importer("leaky_plugin")
    with ReloadTracker([leaky]) as tracker:
        records = [tracker.reload() for _ in range(RELOADS)]
        summary = tracker.summary()
    assert summary.leaking and summary.verdict == "leaking"
    assert summary.bytes_per_reload == pytest.approx(PAYLOAD, rel=0.2)
    assert summary.low > summary.threshold_bytes
    assert summary.reloads == RELOADS and summary.samples == RELOADS - summary.warmup
    assert summary.stale_versions == RELOADS
    last = records[-1]
    assert [s.version for s in last.stale] == list(range(RELOADS))
    assert {(s.qualname, s.kind) for s in last.stale} == {("_make_handler.<locals>.handle", "function")}
    assert last.stale[0].referrers == ("plugin_registry.SUBSCRIBERS[0]",)
    lines = (EXAMPLE / "leaky_plugin.py").read_text().splitlines()
    payload_line = next(i for i, line in enumerate(lines, 1) if "bytearray(PAYLOAD_BYTES)" in line)
    site = last.top_growth[0]
    assert site.frames[0].endswith(f"leaky_plugin.py:{payload_line}") and site.size_diff >= PAYLOAD
    assert last.retained_bytes == pytest.approx(PAYLOAD, rel=0.2)


def test_fixed_twin_is_not_leaking(importer: Importer) -> None:
    fixed = importer("fixed_plugin")
    with ReloadTracker([fixed]) as tracker:
        for _ in range(RELOADS):
            tracker.reload()
        summary = tracker.summary()
    assert not summary.leaking and summary.verdict == "not leaking"
    assert abs(summary.bytes_per_reload) < summary.threshold_bytes
    assert summary.stale_versions == 0 and summary.stale_objects == 0


def test_stale_versions_counted_exactly(importer: Importer, tmp_path: Path) -> None:
    write_module(tmp_path, "keeper", "KEPT = []\n")
    write_module(
        tmp_path,
        "one_old_handler",
        """
        import keeper

        class Handler:
            def __call__(self, request):
                return request

        def helper():  # never kept: must not be stale
            return Handler

        keeper.KEPT.append(Handler())  # one instance of every version: keeps its class alive
        """,
    )
    module = importer("one_old_handler")
    try:
        with ReloadTracker([module], count_objects=False) as tracker:
            for n in range(1, 5):
                record = tracker.reload()
                assert record.stale_versions == n
                assert record.stale_objects == 2 * n  # the class and its __call__
                assert {s.qualname for s in record.stale} == {"Handler", "Handler.__call__"}
            paths = [p for s in record.stale for p in s.referrers]
            assert paths and all(p.startswith("keeper.KEPT[") for p in paths)
    finally:
        sys.modules.pop("keeper", None)


def test_record_is_complete_and_json_able(importer: Importer) -> None:
    leaky = importer("leaky_plugin")
    with ReloadTracker([leaky], top=3) as tracker:
        record = tracker.reload()
        data = json.loads(json.dumps(tracker.to_dict()))
    assert record.outcome == "ok" and record.error is None and record.version == 1
    assert record.duration_s > 0 and record.memory_source == "tracemalloc"
    assert record.rss_before is not None and record.rss_after is not None
    assert 0 < len(record.top_growth) <= 3 and len(record.object_deltas) <= 3
    assert data["summary"]["verdict"] == "insufficient data"
    assert data["reloads"][0]["stale_versions"] == 1
    assert data["tracemalloc"]["started_by_tracker"] is True


def test_track_wraps_any_reload_function(importer: Importer) -> None:
    leaky = importer("leaky_plugin")
    with ReloadTracker([leaky], name="plugins") as tracker:
        record = tracker.track(lambda: importlib.reload(leaky))
        assert record.name == "plugins" and record.stale_versions == 1

        def broken() -> None:
            raise RuntimeError("bad code")

        with pytest.raises(ReloadError) as caught:
            tracker.track(broken)
    assert isinstance(caught.value, SwapprofError)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert caught.value.record is not None and caught.value.record.outcome == "failed"
    assert caught.value.record.error == "RuntimeError: bad code"
    summary = tracker.summary()
    assert summary.reloads == 2 and summary.failed == 1


def test_noise_is_not_a_leak() -> None:
    kept: list[bytearray] = []

    def reload_with_noise() -> None:  # retains 50 kB, then frees it, and so on: no drift
        if kept:
            kept.pop()
        else:
            kept.append(bytearray(50_000))

    with ReloadTracker(count_objects=False) as tracker:
        for _ in range(8):
            tracker.track(reload_with_noise)
        summary = tracker.summary()
    assert summary.verdict == "not leaking" and summary.low < 0 < summary.high


def test_tracemalloc_is_stopped_only_if_started_by_tracker() -> None:
    assert not tracemalloc.is_tracing()
    with ReloadTracker(tracemalloc_frames=2):
        assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 2
    assert not tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        tracker = ReloadTracker(tracemalloc_frames=2)
        tracker.close()
        assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 1
    finally:
        tracemalloc.stop()


def test_without_tracemalloc_memory_comes_from_rss() -> None:
    with ReloadTracker(tracemalloc_frames=None, count_objects=False) as tracker:
        assert not tracemalloc.is_tracing()
        record = tracker.track(lambda: None)
    assert record.memory_source == "rss" and record.top_growth == ()


def test_errors_are_typed() -> None:
    with pytest.raises(ConfigError):
        ReloadTracker(confidence=1.5)
    with pytest.raises(ConfigError):
        ReloadTracker(tracemalloc_frames=0)
    with ReloadTracker(tracemalloc_frames=None) as tracker, pytest.raises(ConfigError, match="no modules"):
        tracker.reload()
    with pytest.raises(ConfigError, match="not imported"):
        ReloadTracker(["swapprof_no_such_module"], tracemalloc_frames=None).reload()
    with pytest.raises(ReloadError, match="closed"):
        tracker.track(lambda: None)
