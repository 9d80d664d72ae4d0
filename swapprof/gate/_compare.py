"""The gate's rules: a baseline and a current results document in, a verdict out.

Rules (each a ``Check``):
- ``errors``: client errors in the current run <= ``max_errors`` (default 0).
- ``upgrades``: upgrades that did not succeed (rollback, timeout) <= ``max_failed_upgrades`` (0).
- ``time_to_ready``, ``upgrade_p99`` (the ``metrics``): fail only when the one-sided lower
  confidence bound of median(current) / median(baseline) exceeds ``1 + threshold``; the
  bootstrap is seeded, so the same inputs give the same verdict. time_to_ready is judged
  relative to the machine-speed yardstick timed next to each upgrade (``_yardstick.py``)
  when both runs have it (``normalize``), so a runner that is slower today is not a regression.
- ``phase:NAME`` metrics (``phase:gap``, ``phase:import``...): one phase's duration, judged alike.
- ``service_gap`` is judged too when both runs carry a server integration's records (gunicorn
  under its config module, ``swapprof observe``; ``_records.py``), unless the metrics were named.
- ``cap:METRIC`` (optional): the current median may not exceed an absolute number of ms.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from swapprof.gate._phases import config_notes, phase_changes
from swapprof.gate._records import SOURCE
from swapprof.gate._stats import bootstrap_ratio
from swapprof.gate._verdict import NORMALIZED, Check, GateOptions, Verdict, samples_of, title_of


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio_check(name: str, base_doc: dict[str, Any], cur_doc: dict[str, Any], opts: GateOptions) -> Check:
    title = title_of(name)
    base, cur = samples_of(base_doc, name), samples_of(cur_doc, name)
    limit = f"lower bound <= {1 + opts.threshold:.2f}x"
    check = Check(name, title, "pass", "", _median(base), _median(cur), limit)
    if not base:
        check.status, check.message = "skip", "the baseline has no samples to compare with"
        return check
    if not cur:
        check.status, check.message = "fail", "the current run has no samples (no upgrade succeeded)"
        return check
    judged, how = _judged(name, base_doc, cur_doc, opts)
    est = bootstrap_ratio(*judged, confidence=opts.confidence, resamples=opts.resamples, seed=opts.seed)
    check.estimate, check.normalized = est, bool(how)
    regressed = est.low > 1 + opts.threshold
    check.status = "fail" if regressed else "pass"
    b_med, c_med = statistics.median(base), statistics.median(cur)
    change = f"{c_med / b_med - 1:+.1%}" if b_med > 0 else f"{c_med - b_med:+.1f} ms"
    check.message = (
        f"median {c_med:.1f} ms vs {b_med:.1f} ms ({change}); "
        f"{how}ratio {est.ratio:.2f}, {opts.confidence:.0%} lower bound {est.low:.2f} "
        f"{'>' if regressed else '<='} {1 + opts.threshold:.2f}"
    )
    if min(len(base), len(cur)) < 3:
        check.details.append(
            f"only {min(len(base), len(cur))} sample(s): the interval is wide; bench more upgrades"
        )
    if how:
        yard = [_median(d["samples"].get("yardstick_ms") or []) for d in (base_doc, cur_doc)]
        check.details.append(f"machine-speed yardstick median {yard[0] or 0:.1f} ms -> {yard[1] or 0:.1f} ms")
    if name == "time_to_ready":
        check.details.extend(phase_changes(base_doc, cur_doc))
    return check


def _judged(
    name: str, base_doc: dict[str, Any], cur_doc: dict[str, Any], opts: GateOptions
) -> tuple[tuple[list[float], list[float]], str]:
    """The samples the ratio is judged on: yardstick-normalised ones when both runs have them."""
    key = NORMALIZED.get(name)
    if opts.normalize and key:
        base, cur = base_doc["samples"].get(key) or [], cur_doc["samples"].get(key) or []
        if base and cur:
            return (base, cur), "yardstick-normalised "
    return (samples_of(base_doc, name), samples_of(cur_doc, name)), ""


def _count_check(name: str, title: str, base: int, cur: int, allowed: int, what: str) -> Check:
    status = "fail" if cur > allowed else "pass"
    return Check(
        name, title, status, f"{cur} {what} (baseline {base}; allowed {allowed})", base, cur, f"<= {allowed}"
    )


def _errors_by_upgrade(doc: dict[str, Any]) -> list[str]:
    """Where the errors happened: in which upgrade windows, and how many outside them."""
    lines, inside = [], 0
    for u in doc["upgrades"]:
        counts = {k: v for k, v in (u.get("errors") or {}).items() if v}
        if counts:
            inside += sum(counts.values())
            spread = ", ".join(f"{k} {v}" for k, v in counts.items())
            lines.append(f"during upgrade {u.get('index')} (at {u.get('start_s')} s): {spread}")
    lines.append(f"outside upgrade windows: {sum(doc['errors'].values()) - inside}")
    return lines


def recorded_by_server(*docs: dict[str, Any]) -> bool:
    """Every document has upgrades whose phases came from a server integration's records."""
    return all(any(u.get("source") == SOURCE for u in doc["upgrades"]) for doc in docs)


def compare(baseline: dict[str, Any], current: dict[str, Any], options: GateOptions | None = None) -> Verdict:
    """Judge ``current`` against ``baseline`` (both validated ``swapprof.bench/1`` documents)."""
    opts = options or GateOptions()
    errors = _count_check(
        "errors",
        "client errors",
        sum(baseline["errors"].values()),
        sum(current["errors"].values()),
        opts.max_errors,
        "client errors",
    )
    kinds = {k: v for k, v in current["errors"].items() if v}
    if kinds:
        errors.details.append("by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
        errors.details.extend(_errors_by_upgrade(current))
    bad = [u for u in current["upgrades"] if u["outcome"] != "success"]
    upgrades = _count_check(
        "upgrades",
        "failed upgrades",
        sum(u["outcome"] != "success" for u in baseline["upgrades"]),
        len(bad),
        opts.max_failed_upgrades,
        f"of {len(current['upgrades'])} upgrades failed",
    )
    upgrades.details.extend(f"upgrade {u.get('index')}: {u['outcome']} ({u.get('reason')})" for u in bad)
    if opts.judge_service_gap and "service_gap" not in opts.metrics and recorded_by_server(baseline, current):
        opts = dataclasses.replace(opts, metrics=(*opts.metrics, "service_gap"))
    checks = [errors, upgrades, *(_ratio_check(m, baseline, current, opts) for m in opts.metrics)]
    for name, cap in sorted(opts.caps.items()):
        title = title_of(name)
        value = _median(samples_of(current, name))
        status = "fail" if value is None or value > cap else "pass"
        shown = "no samples" if value is None else f"median {value:.1f} ms"
        checks.append(
            Check(
                f"cap:{name}",
                f"{title} cap",
                status,
                f"{shown}, cap {cap:g} ms",
                None,
                value,
                f"<= {cap:g} ms",
            )
        )
    return Verdict(checks, opts, baseline, current, config_notes(baseline, current))
