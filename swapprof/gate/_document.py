"""A results document (``swapprof.bench/1``) from the requests and the upgrade entries of a run."""

from __future__ import annotations

import time
from typing import Any

from swapprof.gate import _summarize as summ
from swapprof.gate._load import Result, error_counts
from swapprof.gate._schema import SCHEMA


def samples(entries: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The per-upgrade samples the gate judges, from the upgrade entries (in upgrade order)."""
    ok = [e for e in entries if e["outcome"] == "success"]

    def pick(key: str, pool: list[dict[str, Any]]) -> list[float]:
        return [e[key] for e in pool if isinstance(e.get(key), int | float)]

    return {
        "time_to_ready_ms": pick("time_to_ready_ms", ok),
        "upgrade_total_ms": pick("upgrade_total_ms", ok),
        "upgrade_p99_ms": [e["latency_ms"]["p99"] for e in entries if e["latency_ms"]["p99"] is not None],
        "first_new_answer_ms": pick("first_new_answer_ms", ok),
        "service_gap_ms": pick("service_gap_ms", ok),
        "yardstick_ms": pick("yardstick_ms", entries),
        "time_to_ready_norm": [
            round(e["time_to_ready_ms"] / e["yardstick_ms"], 4)
            for e in ok
            if isinstance(e.get("time_to_ready_ms"), int | float) and e.get("yardstick_ms")
        ],
    }


def document(
    results: list[Result],
    entries: list[dict[str, Any]],
    windows: list[summ.Window],
    zero: int,
    steady_from: int,
    end: int,
    exclude: list[summ.Window] | None = None,
) -> dict[str, Any]:
    steady, per_window = summ.split(results, windows, steady_from, exclude or [])
    for entry, window, in_window in zip(entries, windows, per_window, strict=True):
        entry.setdefault(
            "first_new_answer_ms", summ.first_new_answer_ms(results, window, entry.get("new_generation"))
        )
        entry.update(start_s=round((window[0] - zero) / 1e9, 4), end_s=round((window[1] - zero) / 1e9, 4))
        entry.update(summ.window_entry(in_window))
    upgrade_results = [r for w in per_window for r in w]
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round((end - zero) / 1e9, 3),
        "upgrades": entries,
        "samples": samples(entries),
        "latency_ms": {"steady": summ.latency(steady), "upgrade": summ.latency(upgrade_results)},
        "latency_by_path_ms": summ.by_path(steady, upgrade_results),
        "requests": {
            "total": len(results),
            "steady": len(steady),
            "upgrade": len(upgrade_results),
            "by_status": summ.status_counts(results),
            "retried": sum(r.retried for r in results),
        },
        "errors": error_counts(results),
        "timeline": summ.timeline(results, zero, end),
        "yardstick_windows_s": [
            [round((a - zero) / 1e9, 4), round((b - zero) / 1e9, 4)] for a, b in exclude or []
        ],
    }
