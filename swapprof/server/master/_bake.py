"""The bake window: after the switch, judge the new generation by its own requests.

The old generation is parked meanwhile (``generation._parking``: drained, alive, not accepting).
The new generation's requests since it started serving are compared with the old generation's
last window before the switch, of the same length (each old worker's intervals shipped in
(its stop - window, its stop]; ``_accounting``). Rules (``judge``), the settings in ``ServerConfig``:

- no verdict before both windows hold ``bake_min_requests`` requests;
- errors: fail (``bake_errors``) when the new failed-request ratio exceeds the old one by more
  than ``bake_error_margin`` at significance ``alpha`` (one-sided two-proportion test,
  ``_bakestats.excess_ratio_test``);
- latency: fail (``bake_latency``) when the new latencies are larger at significance ``alpha``
  (one-sided Mann-Whitney U over the histograms' buckets) AND the median grew by more than
  ``bake_latency_margin`` AND by at least ``bake_latency_floor_ms``: a rank test over thousands of
  requests finds any shift significant, the effect size keeps noise from failing a good version;
- looks: one per shipped interval (about every 0.1 s); before the window's end ``alpha`` is
  ``bake_alpha / 10`` (a version failing clearly fails early; a good one, looked at 50 times,
  rarely fails by chance), at the end ``bake_alpha``;
- too little traffic at the end: ``pass`` (recorded ``too_little_traffic``), or ``extend``: up to
  ``MAX_EXTENSIONS`` more windows while the new side is short (the old window cannot grow);
- a new worker that exits during the bake fails it (``bake_errors``: its connections failed);
- the parked old generation gone (killed): verdict ``old_gone`` at once, nothing to roll back to,
  the new generation stays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from swapprof._vocabulary import (
    BAKE_FAIL,
    BAKE_OLD_GONE,
    BAKE_PASS,
    BAKE_TOO_LITTLE_TRAFFIC,
    REASON_BAKE_ERRORS,
    REASON_BAKE_LATENCY,
)
from swapprof.server._accounting import Window
from swapprof.server._config import ServerConfig
from swapprof.server._contract import SIGNAL_RESUME, STAGE_RESUMED, STAGE_STOPPED_ACCEPTING
from swapprof.server.master._bakestats import excess_ratio_test, rank_test_greater
from swapprof.server.master._child import Generation, memory_kb
from swapprof.server.master._cohort import Cohort

EARLY_ALPHA_FACTOR = 0.1
MAX_EXTENSIONS = 3
LOOK_S = 0.25
"""Longest wait between two looks (a look also follows every interval a new worker ships)."""
RESUME_TIMEOUT_S = 2.0


@dataclass
class Judgement:
    verdict: str | None = None
    """None: no verdict yet; else one of ``BAKE_VERDICTS``."""
    reason: str | None = None
    detail: str = ""
    errors_p: float | None = None
    latency_p: float | None = None
    median_change: float | None = None


def judge(old: Window, new: Window, config: ServerConfig, final: bool) -> Judgement:
    """One look at the two windows (rules: the module docstring)."""
    minimum = config.bake_min_requests
    if old.requests < minimum or new.requests < minimum:
        if not final:
            return Judgement()
        short = f"{new.requests} new / {old.requests} old requests, {minimum} wanted in each"
        return Judgement(BAKE_TOO_LITTLE_TRAFFIC, detail=short)
    alpha = config.bake_alpha if final else config.bake_alpha * EARLY_ALPHA_FACTOR
    errors_p = excess_ratio_test(new.failed, new.requests, old.failed, old.requests, config.bake_error_margin)
    _, latency_p = rank_test_greater(
        {float(k): v for k, v in new.hist.items()}, {float(k): v for k, v in old.hist.items()}
    )
    med_new, med_old = new.quantile_ms(0.5) or 0.0, old.quantile_ms(0.5) or 0.0
    change = (med_new / med_old - 1.0) if med_old > 0 else None
    found = Judgement(errors_p=errors_p, latency_p=latency_p, median_change=change)
    if errors_p < alpha:
        found.verdict, found.reason = BAKE_FAIL, REASON_BAKE_ERRORS
        found.detail = (
            f"error ratio {new.error_ratio:.1%} ({new.failed} of {new.requests}) vs "
            f"{old.error_ratio:.1%} ({old.failed} of {old.requests}) before the switch, p={errors_p:.2g}"
        )
    elif (
        latency_p < alpha
        and med_new > med_old * (1.0 + config.bake_latency_margin)
        and med_new - med_old >= config.bake_latency_floor_ms
    ):
        found.verdict, found.reason = BAKE_FAIL, REASON_BAKE_LATENCY
        found.detail = (
            f"median latency {med_new:.1f} ms vs {med_old:.1f} ms before the switch, p={latency_p:.2g}"
        )
    elif final:
        found.verdict = BAKE_PASS
    return found


def old_window(old: list[Generation], switched_at: int, window_s: float) -> Window:
    """The old generation's last ``window_s`` before it stopped accepting, over its workers."""
    total = Window()
    for worker in old:
        stop = worker.stages.get(STAGE_STOPPED_ACCEPTING, switched_at)
        worker.requests.window(stop - int(window_s * 1e9), stop, total)
    return total


def new_window(new: Cohort, now: int) -> Window:
    total = Window()
    for worker in new:
        worker.requests.window(0, now, total)
    return total


async def bake(config: ServerConfig, old: list[Generation], new: Cohort, switched_at: int) -> dict[str, Any]:
    """Look at the windows until a verdict; return the evidence (``verdict``, ``reason``...)."""
    window_ns = int(config.bake_window * 1e9)
    before = old_window(old, switched_at, config.bake_window)
    end, extended, looks = switched_at + window_ns, 0, 0
    while True:
        now = time.monotonic_ns()
        after = new_window(new, now)
        dead = next((w for w in new if not w.alive), None)
        if not any(w.alive for w in old):
            found = Judgement(
                BAKE_OLD_GONE, detail="the parked old generation is gone: nothing to roll back to"
            )
        elif dead is not None:
            found = Judgement(
                BAKE_FAIL,
                REASON_BAKE_ERRORS,
                f"worker {dead.worker} of the new generation {dead.describe_exit()}",
            )
        else:
            looks += 1
            found = judge(before, after, config, final=now >= end)
            short = after.requests < config.bake_min_requests <= before.requests
            if (
                found.verdict == BAKE_TOO_LITTLE_TRAFFIC
                and config.bake_low_traffic == "extend"
                and short
                and extended < MAX_EXTENSIONS
            ):
                end, extended = end + window_ns, extended + 1
                continue
        if found.verdict is not None:
            break
        seen = sum(w.requests.received for w in new)
        await new.wait_until(
            lambda: sum(w.requests.received for w in new) != seen or not all(w.alive for w in new),  # noqa: B023
            min(end, now + int(LOOK_S * 1e9)),
        )
    rss = [memory_kb(w.pid) for w in old if w.alive]
    return {
        "verdict": found.verdict,
        "reason": found.reason,
        "detail": found.detail,
        "window_s": config.bake_window,
        "low_traffic_policy": config.bake_low_traffic,
        "extended": extended,
        "looks": looks,
        "decided_ms": round((time.monotonic_ns() - switched_at) / 1e6, 3),
        "old": before.summary(),
        "new": after.summary(),
        "errors_p": found.errors_p,
        "latency_p": found.latency_p,
        "median_change": None if found.median_change is None else round(found.median_change, 4),
        "parked_rss_kb": sum(r for r, _ in rss if r is not None) if rss else None,
        "parked_pss_kb": sum(p for _, p in rss if p is not None) if rss else None,
    }


async def resume(old: list[Generation]) -> list[Generation]:
    """Tell every parked old worker to accept again; return those that said so in time."""
    alive = [w for w in old if w.alive]
    for worker in alive:
        worker.signal(SIGNAL_RESUME)
    if alive:
        deadline = time.monotonic_ns() + int(RESUME_TIMEOUT_S * 1e9)
        await alive[0].wait_until(
            lambda: all(STAGE_RESUMED in w.stages or not w.alive for w in alive), deadline
        )
    return [w for w in alive if w.alive and STAGE_RESUMED in w.stages]


def span_attributes(evidence: dict[str, Any]) -> dict[str, object]:
    """The ``bake`` span's attributes: the verdict and its evidence."""
    attributes: dict[str, object] = {"swapprof.bake.verdict": evidence.get("verdict") or ""}
    for key in (
        "window_s",
        "extended",
        "looks",
        "errors_p",
        "latency_p",
        "median_change",
        "parked_rss_kb",
        "resumed_ms",
    ):
        if evidence.get(key) is not None:
            attributes[f"swapprof.bake.{key}"] = evidence[key]
    for side in ("old", "new"):
        for key, value in (evidence.get(side) or {}).items():
            if value is not None:
                attributes[f"swapprof.bake.{side}.{key}"] = value
    return attributes
