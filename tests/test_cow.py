"""Copy-on-write ahead (``server._cow``), on real forked processes and the real kernel.

A parent fills a buffer; a first child writes to it (its pages become its own) and lists what
it copied; a second child copies those pages ahead with ``populate`` and then writes to them
without faulting, its contents unchanged. A list that names pages nobody maps is harmless.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
from collections.abc import Callable
from pathlib import Path

import pytest

from swapprof.server import _cow

SIZE = 4 << 20  # 1024 pages
MADV_NOHUGEPAGE = 15


def _in_child(work: Callable[[], dict[str, int]]) -> dict[str, int]:
    """Run ``work`` in a forked child; return what it returned (the child is reaped)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            os.write(w, json.dumps(work()).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the child failed"
    result: dict[str, int] = json.loads(data)
    return result


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.fixture
def buffer() -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(SIZE)  # an anonymous mapping of its own
    start = -(-ctypes.addressof(buf) // _cow.PAGE) * _cow.PAGE
    madvise = _cow.libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise(start, SIZE - _cow.PAGE, MADV_NOHUGEPAGE)  # 4 KiB pages, whatever the THP setting
    ctypes.memset(buf, 7, SIZE)  # present
    return buf


def _touch(buf: ctypes.Array[ctypes.c_char]) -> None:
    for offset in range(0, SIZE, _cow.PAGE):
        buf[offset] = buf[offset]  # one byte written per page, as a reference count would be


def test_a_spare_copies_ahead_what_a_generation_copied_and_then_writes_without_faults(
    buffer: ctypes.Array[ctypes.c_char], tmp_path: Path
) -> None:
    start = ctypes.addressof(buffer)
    ours = range(-(-start // _cow.PAGE), (start + SIZE) // _cow.PAGE)  # whole pages of the buffer
    report = str(tmp_path / "pages.json")

    def generation() -> dict[str, int]:
        _touch(buffer)
        _cow.report(report)
        pages = {p for s, n in _cow.read(report) for p in range(s // _cow.PAGE, s // _cow.PAGE + n)}
        return {"listed": sum(1 for p in ours if p in pages)}

    assert _in_child(generation)["listed"] == len(ours)

    def spare(populate: bool) -> Callable[[], dict[str, int]]:
        def work() -> dict[str, int]:
            copied = _cow.populate(_cow.read(report)) if populate else 0
            before = _faults()
            _touch(buffer)
            return {"copied": copied, "faults": _faults() - before, "intact": int(buffer.raw == b"\7" * SIZE)}

        return work

    cold, warm = _in_child(spare(False)), _in_child(spare(True))
    assert cold["faults"] >= len(ours) * 0.9  # every page written is copied on the way
    assert warm["copied"] >= len(ours) and warm["faults"] < len(ours) * 0.1
    assert cold["intact"] and warm["intact"]


def test_a_list_of_pages_nobody_maps_copies_nothing(tmp_path: Path) -> None:
    report = tmp_path / "pages.json"
    report.write_text(json.dumps({"runs": [[_cow.PAGE, 16], [1 << 46, 4]]}))
    assert _in_child(lambda: {"copied": _cow.populate(_cow.read(str(report)))})["copied"] == 0
    assert _cow.read(str(tmp_path / "missing.json")) == [] and _cow.populate([]) == 0


def test_populate_stops_when_asked(buffer: ctypes.Array[ctypes.c_char], tmp_path: Path) -> None:
    start = -(-ctypes.addressof(buffer) // _cow.PAGE) * _cow.PAGE
    runs = [(start + i * 2 * _cow.PAGE, 1) for i in range(100)]  # 100 runs of one page
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 10

    assert _in_child(lambda: {"copied": _cow.populate(runs, stop)})["copied"] == 10
