"""Percentiles, latency summaries and the bootstrap the gate judges with.

The gate compares two small samples (K upgrades each) taken on noisy machines. It asks: with
``confidence``, is median(current) / median(baseline) above a limit? The bootstrap resamples
both samples with replacement ``resamples`` times (seeded, so a verdict is reproducible) and
takes the one-sided lower bound of the ratio's distribution.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile ``q`` (0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * min(100.0, max(0.0, q)) / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    if ordered[low] == ordered[high]:  # also keeps inf - inf out
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean and the percentiles reports and the gate use, in milliseconds."""

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "n": len(values_ms),
        "mean": r(statistics.fmean(values_ms)) if values_ms else None,
        "p50": r(percentile(values_ms, 50)),
        "p90": r(percentile(values_ms, 90)),
        "p99": r(percentile(values_ms, 99)),
        "max": r(max(values_ms)) if values_ms else None,
    }


@dataclass(frozen=True)
class RatioEstimate:
    """median(current) / median(baseline): the point estimate and a confidence interval."""

    ratio: float
    low: float
    high: float
    confidence: float


def _ratio(current: float, baseline: float) -> float:
    if baseline <= 0:
        return 1.0 if current <= 0 else math.inf
    return current / baseline


def bootstrap_ratio(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 1,
) -> RatioEstimate:
    """Bootstrap the ratio of medians; ``low``/``high`` are one-sided bounds at ``confidence``.

    ``low`` is the value the true ratio exceeds with probability ``confidence`` (as far as the
    bootstrap can tell), so a gate that fails when ``low > 1 + threshold`` fails only on
    evidence. Both samples must be non-empty.
    """
    if not baseline or not current:
        raise ValueError("bootstrap_ratio needs two non-empty samples")
    if not 0.5 <= confidence < 1:
        raise ValueError("confidence must be in [0.5, 1)")
    rng = random.Random(seed)
    point = _ratio(statistics.median(current), statistics.median(baseline))
    ratios = sorted(
        _ratio(
            statistics.median(rng.choices(current, k=len(current))),
            statistics.median(rng.choices(baseline, k=len(baseline))),
        )
        for _ in range(max(100, resamples))
    )
    tail = 1 - confidence
    return RatioEstimate(
        ratio=point,
        low=percentile(ratios, 100 * tail) or 0.0,
        high=percentile(ratios, 100 * (1 - tail)) or 0.0,
        confidence=confidence,
    )
