"""FileStamps: which preloaded files changed, with inotify saying when to look."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swapprof.server import _filewatch
from swapprof.server._filewatch import FileStamps


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
