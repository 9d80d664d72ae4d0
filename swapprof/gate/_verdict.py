"""The gate's vocabulary: its options, the metrics it knows, one check, the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swapprof._errors import ConfigError
from swapprof._vocabulary import DISPLAY_ORDER
from swapprof.gate._phases import phase_samples
from swapprof.gate._stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, RatioEstimate

# name -> (samples key, title)
METRICS = {
    "time_to_ready": ("time_to_ready_ms", "time_to_ready"),
    "upgrade_p99": ("upgrade_p99_ms", "p99 latency during upgrades"),
    "upgrade_total": ("upgrade_total_ms", "upgrade_total"),
    "first_new_answer": ("first_new_answer_ms", "first answer from the new generation"),
    "service_gap": ("service_gap_ms", "service_gap"),
}
PHASE_METRICS = {f"phase:{name}": name for name in DISPLAY_ORDER}
"""``phase:NAME``: one phase's duration per successful upgrade (``phase:gap`` = service_gap)."""
DEFAULT_METRICS = ("time_to_ready", "upgrade_p99")
NORMALIZED = {"time_to_ready": "time_to_ready_norm"}  # judged relative to the yardstick
KNOWN = (*METRICS, *PHASE_METRICS)


def title_of(name: str) -> str:
    return METRICS[name][1] if name in METRICS else f"phase {PHASE_METRICS[name]}"


def samples_of(doc: dict[str, Any], name: str) -> list[float]:
    """The samples of metric ``name`` in a results document."""
    if name in PHASE_METRICS:
        return phase_samples(doc, PHASE_METRICS[name])
    return list(doc["samples"].get(METRICS[name][0]) or [])


@dataclass
class GateOptions:
    threshold: float = 0.2
    confidence: float = DEFAULT_CONFIDENCE
    max_errors: int = 0
    max_failed_upgrades: int = 0
    metrics: tuple[str, ...] = DEFAULT_METRICS
    caps: dict[str, float] = field(default_factory=dict)
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 1
    normalize: bool = True
    judge_service_gap: bool = True
    """Judge service_gap too when both runs carry a server integration's records."""

    def __post_init__(self) -> None:
        unknown = sorted((set(self.metrics) | set(self.caps)) - set(KNOWN))
        if unknown:
            raise ConfigError(
                f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}, phase:NAME "
                f"({', '.join(DISPLAY_ORDER)})"
            )
        if not 0 <= self.threshold < 10:
            raise ConfigError(f"threshold {self.threshold} must be a fraction, e.g. 0.2 for 20%")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence {self.confidence} must be in [0.5, 1), e.g. 0.95")
        if self.max_errors < 0 or self.max_failed_upgrades < 0:
            raise ConfigError("--max-errors and --max-failed-upgrades cannot be negative")


@dataclass
class Check:
    name: str
    title: str
    status: str  # pass | fail | skip
    message: str
    baseline: float | None = None
    current: float | None = None
    limit: str = ""
    estimate: RatioEstimate | None = None
    normalized: bool = False  # the estimate is of time / yardstick, not of raw time
    details: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    checks: list[Check]
    options: GateOptions
    baseline: dict[str, Any]
    current: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failed
