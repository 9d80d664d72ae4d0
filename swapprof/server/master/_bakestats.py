"""The bake's two tests, pure functions over counts (no scipy: ~50 lines are enough).

- ``rank_test_greater(x, y)``: Mann-Whitney U for H1 "x tends to be larger than y", over tied
  groups (value -> count: the latency histograms' buckets), normal approximation with the tie
  correction and a continuity correction of 0.5, one-sided. The same p-value as R's
  ``wilcox.test(x, y, alternative = "greater", exact = FALSE, correct = TRUE)``.
- ``excess_ratio_test(x1, n1, x0, n0, margin)``: one-sided test of H1 "p1 - p0 > margin" for two
  proportions, Agresti-Caffo's adjusted Wald interval (one pseudo-success and one pseudo-failure
  added to each group, so 0 of n and n of n still have a variance), as a z-test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def rank_test_greater(x: Mapping[float, int], y: Mapping[float, int]) -> tuple[float, float]:
    """(U of x, one-sided p-value) for x stochastically greater than y; p = 1 with no data."""
    n1, n2 = sum(x.values()), sum(y.values())
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    u = 0.0
    below = 0  # y values smaller than the current value
    ties = 0.0
    for value in sorted(set(x) | set(y)):
        cx, cy = x.get(value, 0), y.get(value, 0)
        u += cx * (below + 0.5 * cy)
        below += cy
        t = cx + cy
        ties += t**3 - t
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return u, 1.0  # every value tied: no evidence either way
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return u, normal_sf(z)


def counts(values: Iterable[float]) -> dict[float, int]:
    """Raw samples as the value -> count groups ``rank_test_greater`` takes."""
    found: dict[float, int] = {}
    for value in values:
        found[value] = found.get(value, 0) + 1
    return found


def excess_ratio_test(x1: int, n1: int, x0: int, n0: int, margin: float = 0.0) -> float:
    """One-sided p-value for "ratio x1/n1 exceeds x0/n0 by more than ``margin``"; 1 without data."""
    if n1 <= 0 or n0 <= 0:
        return 1.0
    p1, p0 = (x1 + 1) / (n1 + 2), (x0 + 1) / (n0 + 2)
    se = math.sqrt(p1 * (1 - p1) / (n1 + 2) + p0 * (1 - p0) / (n0 + 2))
    return normal_sf((p1 - p0 - margin) / se)
