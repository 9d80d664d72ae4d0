"""From per-reload retained bytes to a ``ReloadSummary``: leaking only when growth is real.

The first ``warmup`` reloads are left out: the version they replace was often allocated before
tracing started, so freeing it is invisible while its successor is counted. Then ``leaking``
needs ``min_samples`` successful reloads and the whole ``confidence`` interval of the drift
(see ``_stats``) above ``threshold_bytes`` per reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swapprof._errors import ConfigError
from swapprof.hooks._records import ReloadRecord, ReloadSummary, Verdict
from swapprof.hooks._stats import drift


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
