"""What a tracked reload leaves behind: one ``ReloadRecord`` per reload, one ``ReloadSummary`` overall."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from swapprof.gc._ring import GCPause

Outcome = Literal["ok", "failed"]
Verdict = Literal["leaking", "not leaking", "insufficient data"]


@dataclass(frozen=True, slots=True)
class AllocationSite:
    """A traceback (innermost frame first, ``file:line``) whose live allocations grew in a reload."""

    frames: tuple[str, ...]
    size_diff: int
    count_diff: int
    size: int
    count: int


@dataclass(frozen=True, slots=True)
class StaleObject:
    """A function or class of an earlier module version still alive after a full collection.

    ``referrers`` is a short path from a root to it (``plugin_registry.SUBSCRIBERS[3]``), computed
    for the oldest few only; empty when not computed or no root was found near enough.
    """

    module: str
    qualname: str
    kind: Literal["function", "class"]
    version: int
    referrers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReloadRecord:
    """One reload: timing, memory on both sides of it (full collection first), and what it left alive.

    ``retained_bytes`` is the growth of live traced memory (``memory_source="tracemalloc"``) or of
    RSS when tracemalloc is off (``"rss"``). ``version`` counts successful and failed reloads alike.
    """

    name: str
    version: int
    modules: tuple[str, ...]
    outcome: Outcome
    error: str | None
    start_unix_ns: int
    duration_s: float
    rss_before: int | None
    rss_after: int | None
    memory_source: Literal["tracemalloc", "rss"]
    retained_bytes: int
    top_growth: tuple[AllocationSite, ...] = ()
    object_deltas: dict[str, int] = field(default_factory=dict)
    stale: tuple[StaleObject, ...] = ()
    stale_versions: int = 0
    gc_pauses: tuple[GCPause, ...] = ()

    @property
    def stale_objects(self) -> int:
        return len(self.stale)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stale_objects"] = self.stale_objects
        data["gc_pauses"] = [p.to_dict() for p in self.gc_pauses]
        return data


@dataclass(frozen=True, slots=True)
class ReloadSummary:
    """The verdict over all reloads so far.

    ``bytes_per_reload`` is the drift of retained memory with its ``confidence`` interval
    ``[low, high]`` over ``samples`` successful reloads after ``warmup``; ``leaking`` is true only
    when the whole interval lies above ``threshold_bytes``. ``stale_versions`` is from the latest reload.
    """

    name: str
    reloads: int
    failed: int
    verdict: Verdict
    leaking: bool
    bytes_per_reload: float
    low: float
    high: float
    confidence: float
    samples: int
    warmup: int
    threshold_bytes: float
    retained_bytes_total: int
    stale_versions: int
    stale_objects: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("low", "high"):  # JSON has no infinities
            if not math.isfinite(data[key]):
                data[key] = None
        return data
