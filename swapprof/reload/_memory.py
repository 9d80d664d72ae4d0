"""Memory on one side of a reload: RSS, live traced bytes by traceback, and object counts by type.

Traces whose innermost frame is in ``tracemalloc`` or in this package (the snapshots, the
counts) are left out, so measuring does not count as growth.

Cost of tracing (benchmarks/tracemalloc_cost.py): allocation-heavy code runs several times
slower even with one frame. Each traced frame also costs a walk of its code object's line table
(CPython 3.11 finds the line from the start of the table), so deep traces through large
functions, and allocations in a large module's body during a reload, cost far more: hence one
frame by default. Snapshots take time in proportion to live traces.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass

from swapprof.reload import _tracemalloc
from swapprof.reload._records import AllocationSite

#: one frame: an allocation site is a line; more frames show callers, at the cost above
DEFAULT_TRACEMALLOC_FRAMES = 1
# types of the measurement itself, left out of object deltas
_OWN = ("swapprof.reload.", "swapprof.gc.", "swapprof.telemetry.")


def rss_bytes() -> int | None:
    """Resident set size from ``/proc/self/statm``; None where that file does not exist."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class TracingSession:
    """Starts tracemalloc with ``frames`` frames if it is off, and stops it only if it started it."""

    def __init__(self, frames: int | None) -> None:
        self.frames = frames
        self.owned = False

    def ensure(self) -> bool:
        """True when tracemalloc is tracing (starting it if allowed)."""
        if not tracemalloc.is_tracing() and self.frames is not None:
            tracemalloc.start(self.frames)
            self.owned = True
        return tracemalloc.is_tracing()

    def close(self) -> None:
        if self.owned and tracemalloc.is_tracing():
            tracemalloc.stop()
        self.owned = False


@dataclass(slots=True)
class Side:
    """One side of a reload: RSS, live traced bytes, bytes and blocks per traceback, objects per
    type, and (on the after side) the tracebacks that grew most since the before side.

    Sites are keyed by the traceback's hash and hold ints only, so after a full collection the
    before side is untracked by gc and does not show up in the after side's object counts.
    """

    rss: int | None
    traced: int
    sites: _tracemalloc.Sites
    types: dict[str, int]
    growth: tuple[AllocationSite, ...] = ()


def measure(tracing: bool, count_types: bool, before: Side | None = None, top: int = 0) -> Side:
    """Collect fully, then read object counts, RSS and the live traces by traceback; with
    ``before``, also the ``top`` tracebacks whose live bytes grew most since then."""
    gc.collect()
    types: dict[str, int] = {}  # by name: holding the types would keep old class versions alive
    if count_types:
        # lists, not int counters: incrementing ints allocates, which is slow while tracing
        by_type: defaultdict[type, list[None]] = defaultdict(list)
        for kind in map(type, gc.get_objects()):
            by_type[kind].append(None)
        for kind, seen in by_type.items():
            types[_type_name(kind)] = types.get(_type_name(kind), 0) + len(seen)
        del by_type, kind
    groups = _tracemalloc.group(tracemalloc.take_snapshot()) if tracing else {}
    sites = _tracemalloc.sites(groups)
    growth = _tracemalloc.top_growth(groups, before.sites, top) if before is not None else ()
    del groups
    return Side(rss_bytes(), sum(size for size, _ in sites.values()), sites, types, growth)


def type_deltas(before: Side, after: Side, limit: int) -> dict[str, int]:
    """The ``limit`` largest changes in gc-tracked object counts, by qualified type name."""
    deltas = {}
    for name in before.types.keys() | after.types.keys():
        delta = after.types.get(name, 0) - before.types.get(name, 0)
        if delta and not name.startswith(_OWN):
            deltas[name] = delta
    ranked = sorted(deltas.items(), key=lambda item: abs(item[1]), reverse=True)
    return dict(ranked[: max(limit, 0)])


def _type_name(kind: type) -> str:
    module = getattr(kind, "__module__", "builtins")
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
