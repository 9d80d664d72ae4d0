"""The leak verdict: from per-reload retained bytes to a ``ReloadSummary``, leaking only when growth is real.

Memory retained after reload ``k`` is ``R_k = d_1 + ... + d_k``, where ``d_i`` is what reload ``i``
retained (full collection on both sides). That is a random walk with drift ``b`` bytes per reload;
the least-squares estimate of ``b`` from the increments is their mean, and its interval is the
Student-t interval of that mean. (A straight-line fit to ``R_k`` itself would understate the
uncertainty of a random walk and flag noise as a leak.)

The first ``warmup`` reloads are left out: the version they replace was often allocated before
tracing started, so freeing it is invisible while its successor is counted. Then ``leaking``
needs ``min_samples`` successful reloads and the whole ``confidence`` interval of the drift
above ``threshold_bytes`` per reload.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swapprof._errors import ConfigError
from swapprof.reload._records import ReloadRecord, ReloadSummary, Verdict

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


@dataclass(frozen=True, slots=True)
class Settings:
    confidence: float = 0.95
    warmup: int = 1
    min_samples: int = 3
    threshold_bytes: float = 1024.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence must be in [0.5, 1), not {self.confidence!r}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must not be negative, not {self.warmup!r}")
        if self.min_samples < 2:
            raise ConfigError(f"min_samples must be at least 2, not {self.min_samples!r}")
        if not self.threshold_bytes >= 0:
            raise ConfigError(f"threshold_bytes must not be negative, not {self.threshold_bytes!r}")


def summarize(
    name: str,
    settings: Settings,
    retained: Iterable[tuple[int, int]],
    totals: Sequence[int],
    latest: ReloadRecord | None,
) -> ReloadSummary:
    """``retained``: (version, bytes) of successful reloads; ``totals``: reloads, failed, bytes."""
    samples = [float(b) for version, b in retained if version > settings.warmup]
    estimate = drift(samples, settings.confidence)
    verdict: Verdict = "insufficient data"
    if estimate.samples >= settings.min_samples:
        verdict = "leaking" if estimate.low > settings.threshold_bytes else "not leaking"
    return ReloadSummary(
        name=name,
        reloads=totals[0],
        failed=totals[1],
        verdict=verdict,
        leaking=verdict == "leaking",
        bytes_per_reload=estimate.bytes_per_reload,
        low=estimate.low,
        high=estimate.high,
        confidence=settings.confidence,
        samples=estimate.samples,
        warmup=settings.warmup,
        threshold_bytes=settings.threshold_bytes,
        retained_bytes_total=totals[2],
        stale_versions=latest.stale_versions if latest else 0,
        stale_objects=latest.stale_objects if latest else 0,
    )
