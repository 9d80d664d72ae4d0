"""Grouping live traces by traceback: the fast path over raw traces equals the public API's."""

from __future__ import annotations

import tracemalloc

from swapprof.reload import _tracemalloc


def allocate() -> list[bytearray]:
    return [bytearray(1000) for _ in range(50)]


def test_fast_grouping_matches_the_public_statistics() -> None:
    tracemalloc.start(3)
    try:
        kept = allocate()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    fast = _tracemalloc.group(snapshot)
    snapshot.traces._traces = tuple(snapshot.traces._traces)  # type: ignore[attr-defined]  # force the fallback
    public = _tracemalloc.group(snapshot)
    assert fast == public
    ours = [(frames, entry) for frames, entry in fast.items() if frames[0][0] == __file__]
    assert any(entry[0] >= 50_000 and entry[1] >= 50 for _, entry in ours)
    assert all(not _tracemalloc.own(frames[0][0]) for frames in fast)
    assert len(kept) == 50


def test_top_growth_formats_only_what_grew() -> None:
    groups = {(("a.py", 1), ("b.py", 2)): [500, 5], (("c.py", 3),): [100, 1]}
    before = _tracemalloc.sites({(("c.py", 3),): [100, 1]})
    (site,) = _tracemalloc.top_growth(groups, before, 10)
    assert site.frames == ("a.py:1", "b.py:2") and site.size_diff == 500 and site.count_diff == 5
