"""Per-generation pause histograms kept by a reader (never by the gc callback)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from swapprof.gc._ring import GENERATIONS

#: Upper bounds (seconds) of ``cpython.gc.duration`` buckets: 0.1 ms up to 1 s.
GC_PAUSE_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


class PauseHistogram:
    """Cumulative counts per bucket (``le`` bounds plus +Inf), sum and count, per generation."""

    def __init__(self, bounds: Sequence[float] = GC_PAUSE_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self._counts = [[0] * (len(self.bounds) + 1) for _ in range(GENERATIONS)]
        self._sum = [0.0] * GENERATIONS

    def add(self, generation: int, seconds: float, n: int = 1) -> None:
        """Count ``n`` pauses of ``seconds`` each in ``generation``."""
        self._counts[generation][bisect_left(self.bounds, seconds)] += n
        self._sum[generation] += seconds * n

    def count(self, generation: int) -> int:
        return sum(self._counts[generation])

    def total(self, generation: int) -> float:
        return self._sum[generation]

    def to_dict(self, generation: int) -> dict[str, Any]:
        """``{"le": [...], "counts": [...]}`` with non-cumulative counts; the last bound is +Inf."""
        return {
            "le": [*self.bounds, "+Inf"],
            "counts": list(self._counts[generation]),
            "count": self.count(generation),
            "sum": self._sum[generation],
        }
