"""The leak verdict: the drift of retained memory over reloads, with a Student-t confidence interval.

Memory retained after reload ``k`` is ``R_k = d_1 + ... + d_k``, where ``d_i`` is what reload ``i``
retained (full collection on both sides). That is a random walk with drift ``b`` bytes per reload;
the least-squares estimate of ``b`` from the increments is their mean, and its interval is the
Student-t interval of that mean. (A straight-line fit to ``R_k`` itself would understate the
uncertainty of a random walk and flag noise as a leak.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

_DF_LIMIT = 1000  # beyond, t is within 0.1 % of its df=1000 value


def t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd
        term, acc = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):
            acc += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return (2 / math.pi) * (theta + s * acc) if df > 1 else 2 * theta / math.pi
    term, acc = 1.0, 0.0
    for k in range(1, df // 2 + 1):
        acc += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return s * acc


@functools.lru_cache(maxsize=64)
def t_critical(confidence: float, df: int) -> float:
    """The ``t`` with P(|T| < t) = ``confidence`` (two-sided critical value)."""
    df = min(df, _DF_LIMIT)
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) < confidence:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided(mid, df) < confidence else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True, slots=True)
class Drift:
    """Bytes retained per reload: the estimate, its interval and how many reloads it rests on."""

    bytes_per_reload: float
    low: float
    high: float
    samples: int


def drift(retained: Sequence[float], confidence: float) -> Drift:
    """Mean of per-reload retained bytes with its two-sided ``confidence`` interval."""
    n = len(retained)
    if n == 0:
        return Drift(0.0, -math.inf, math.inf, 0)
    mean = math.fsum(retained) / n
    if n == 1:
        return Drift(mean, -math.inf, math.inf, 1)
    stdev = math.sqrt(math.fsum((x - mean) ** 2 for x in retained) / (n - 1))
    half = t_critical(confidence, n - 1) * stdev / math.sqrt(n)
    return Drift(mean, mean - half, mean + half, n)
