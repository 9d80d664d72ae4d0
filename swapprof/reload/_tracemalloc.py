"""Live traced memory grouped by traceback, minus the measurement's own allocations.

``Snapshot.statistics("traceback")`` builds Python objects for every trace (about 6 us each);
grouping the snapshot's raw trace tuples directly is several times faster, which matters when a
long-running process has a million live traces. The raw layout (``(domain, size, frames, ...)``
with frames innermost first, in ``Snapshot.traces._traces``) is what the stdlib's own grouping
reads, on every version this package supports; if it ever differs, the public API is used.
"""

from __future__ import annotations

import heapq
import os
import tracemalloc
from collections.abc import Sequence

from swapprof.reload._records import AllocationSite

Frames = tuple[tuple[str, int], ...]  # (filename, lineno), innermost first
Groups = dict[Frames, list[int]]  # frames -> [bytes, blocks]
Sites = dict[int, tuple[int, int]]  # hash of frames -> (bytes, blocks)

_SWAPPROF = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The measurement: reload tracking, the GC monitor it reads pauses from, the telemetry it reports to.
_OWN_DIRS = tuple(os.path.join(_SWAPPROF, sub) + os.sep for sub in ("reload", "gc", "telemetry"))
_TRACEMALLOC = tracemalloc.__file__


def own(filename: str) -> bool:
    """Allocated by the measurement itself (tracemalloc, reload tracking, GC monitor, telemetry)."""
    return filename == _TRACEMALLOC or filename.startswith(_OWN_DIRS) or filename == "<unknown>"


def group(snapshot: tracemalloc.Snapshot) -> Groups:
    """Bytes and blocks per traceback, leaving out tracebacks whose innermost frame is ``own``."""
    raw = getattr(snapshot.traces, "_traces", None)
    groups: Groups = {}
    if isinstance(raw, list) and all(_raw_shape(t) for t in raw[:1]):
        sizes: dict[Frames, list[int]] = {}
        for trace in raw:  # append the trace's own size: adding ints would allocate, slow when traced
            found = sizes.get(trace[2])
            if found is None:
                found = sizes[trace[2]] = []
            found.append(trace[1])
        for frames, found in sizes.items():
            if not own(frames[0][0]):
                groups[frames] = [sum(found), len(found)]
    else:
        for stat in snapshot.statistics("traceback"):
            frames = tuple((f.filename, f.lineno) for f in reversed(stat.traceback))
            if not own(frames[0][0]):
                groups[frames] = [stat.size, stat.count]
    return groups


def _raw_shape(trace: object) -> bool:
    return (
        isinstance(trace, tuple)
        and len(trace) >= 3
        and isinstance(trace[1], int)
        and isinstance(trace[2], tuple)
        and bool(trace[2])
        and isinstance(trace[2][0], tuple)
    )


def sites(groups: Groups) -> Sites:
    """The groups keyed by hash: ints only, so gc untracks them after a full collection."""
    return {hash(frames): (entry[0], entry[1]) for frames, entry in groups.items()}


def top_growth(groups: Groups, before: Sites, limit: int) -> tuple[AllocationSite, ...]:
    """The ``limit`` tracebacks whose live bytes grew most since ``before``."""
    grown: list[tuple[int, int, Frames, Sequence[int]]] = []
    for frames, entry in groups.items():
        old_size, old_count = before.get(hash(frames), (0, 0))
        if entry[0] > old_size:
            grown.append((entry[0] - old_size, entry[1] - old_count, frames, entry))
    return tuple(
        AllocationSite(tuple(f"{name}:{line}" for name, line in frames), size, count, entry[0], entry[1])
        for size, count, frames, entry in heapq.nlargest(max(limit, 0), grown, key=lambda g: g[0])
    )
