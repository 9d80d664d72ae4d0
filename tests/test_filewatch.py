"""FileStamps: which preloaded files changed, with inotify saying when to look."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from swapprof.server.zygote import _filewatch
from swapprof.server.zygote._filewatch import FileStamps


def _files(tmp_path: Path) -> list[Path]:
    paths = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        path = tmp_path / sub / "mod.py"
        path.write_text("VALUE = 1\n")
        paths.append(path)
    return paths


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "stat"])
def test_a_changed_or_removed_file_is_named_and_stays_named(tmp_path: Path, use_inotify: bool) -> None:
    first, second = _files(tmp_path)
    stamps = FileStamps({str(first), str(second)}, use_inotify=use_inotify)
    try:
        assert stamps.watching is use_inotify
        assert stamps.changed() == []
        (first.parent / "unrelated.txt").write_text("x")  # an event, but not one of ours
        assert stamps.changed() == []
        first.write_text("VALUE = 22\n")
        assert stamps.changed() == [str(first)]
        assert stamps.changed() == [str(first)]  # still changed: no new event needed
        second.unlink()
        assert stamps.changed() == [str(first), str(second)]
    finally:
        stamps.close()


def test_without_events_no_file_is_looked_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _files(tmp_path)
    stamps = FileStamps({str(first), str(second)})
    looked: list[str] = []
    real = _filewatch.stamp

    def counting(path: str) -> tuple[int, int] | None:
        looked.append(path)
        return real(path)

    monkeypatch.setattr(_filewatch, "stamp", counting)
    try:
        for _ in range(100):
            assert stamps.changed() == []
        assert looked == []
        os.utime(second, ns=(1, 1))  # only the mtime: still a change
        assert stamps.changed() == [str(second)]
        assert sorted(looked) == sorted([str(first), str(second)])
    finally:
        stamps.close()


def test_a_path_through_a_symlink_is_compared_every_time(tmp_path: Path) -> None:
    """inotify would watch the old target: a release switched by relinking goes unseen."""
    for release in ("v1", "v2"):
        (tmp_path / release).mkdir()
        (tmp_path / release / "mod.py").write_text(f"VERSION = {release!r}  # {release}\n")
    (tmp_path / "current").symlink_to(tmp_path / "v1")
    path = str(tmp_path / "current" / "mod.py")
    stamps = FileStamps({path})
    try:
        assert not stamps.watching
        (tmp_path / "v2" / "mod.py").write_text("VERSION = 'v2'  # a longer line, another size\n")
        os.replace(_relink(tmp_path), tmp_path / "current")
        assert stamps.changed() == [path]
    finally:
        stamps.close()


def _relink(tmp_path: Path) -> Path:
    fresh = tmp_path / "current.new"
    fresh.symlink_to(tmp_path / "v2")
    return fresh


def test_a_file_written_after_the_cutoff_counts_as_changed(tmp_path: Path) -> None:
    first, second = _files(tmp_path)
    future = time.time_ns() + 3600 * 10**9
    os.utime(first, ns=(2_000, 2_000))
    os.utime(second, ns=(future, future))  # a skewed clock, not a change
    stamps = FileStamps({str(first), str(second)}, not_after_ns=1_500)
    try:
        assert stamps.changed() == [str(first)]  # modified while it was being imported
    finally:
        stamps.close()
