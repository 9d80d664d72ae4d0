"""From every request and the upgrade windows to the figures of a results document.

A request belongs to an upgrade window when it overlaps it (started before the upgrade ended
and ended after it was requested); "steady" requests overlap no window, started after the
warm-up and overlap none of the bench's yardstick timings (which load the CPU themselves). Latency figures are over answered requests; failed ones are counted by kind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from swapprof.gate._load import Result, error_counts
from swapprof.gate._stats import latency_summary, percentile

Window = tuple[int, int]  # monotonic ns: upgrade requested -> upgrade ended
TIMELINE_BUCKETS = 200
MIN_BUCKET_S = 0.1


def _ms(result: Result) -> float:
    return (result.end_ns - result.start_ns) / 1e6


def window_of(result: Result, windows: Sequence[Window]) -> int | None:
    for index, (start, end) in enumerate(windows):
        if result.start_ns < end and result.end_ns > start:
            return index
    return None


def split(
    results: Sequence[Result], windows: Sequence[Window], steady_from_ns: int, exclude: Sequence[Window] = ()
) -> tuple[list[Result], list[list[Result]]]:
    """Requests per upgrade window, and the steady ones (after ``steady_from_ns``, overlapping
    neither a window nor an ``exclude`` interval: the bench's own yardstick work)."""
    steady: list[Result] = []
    per_window: list[list[Result]] = [[] for _ in windows]
    for result in results:
        index = window_of(result, windows)
        if index is not None:
            per_window[index].append(result)
        elif result.start_ns >= steady_from_ns and window_of(result, exclude) is None:
            steady.append(result)
    return steady, per_window


def latency(results: Sequence[Result]) -> dict[str, float | int | None]:
    return latency_summary([_ms(r) for r in results if r.error is None])


def by_path(steady: Sequence[Result], upgrade: Sequence[Result]) -> dict[str, dict[str, Any]]:
    paths = sorted({r.path for r in steady} | {r.path for r in upgrade})
    return {
        path: {
            "steady": latency([r for r in steady if r.path == path]),
            "upgrade": latency([r for r in upgrade if r.path == path]),
        }
        for path in paths
    }


def first_new_answer_ms(results: Sequence[Result], window: Window, generation: int | None) -> float | None:
    """Client side: upgrade requested -> the first answer from the new generation (our server)."""
    if generation is None:
        return None
    ends = [r.end_ns for r in results if r.generation == generation and r.start_ns >= window[0]]
    return round((min(ends) - window[0]) / 1e6, 3) if ends else None


def status_counts(results: Sequence[Result]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(r.status for r in results if r.status).items())}


def timeline(results: Sequence[Result], zero_ns: int, end_ns: int) -> dict[str, Any]:
    """Latency over time in buckets (for the report's picture): count, p50, p99, max, errors."""
    span_s = max(0.0, (end_ns - zero_ns) / 1e9)
    bucket = max(MIN_BUCKET_S, span_s / TIMELINE_BUCKETS)
    count = int(span_s / bucket) + 1
    lat: list[list[float]] = [[] for _ in range(count)]
    errors = [0] * count
    for result in results:
        index = min(count - 1, max(0, int((result.start_ns - zero_ns) / 1e9 / bucket)))
        if result.error is None:
            lat[index].append(_ms(result))
        else:
            errors[index] += 1

    def col(q: float) -> list[float | None]:
        return [None if not v else round(percentile(v, q) or 0.0, 3) for v in lat]

    return {
        "bucket_s": round(bucket, 4),
        "t_s": [round(i * bucket, 4) for i in range(count)],
        "n": [len(v) for v in lat],
        "p50_ms": col(50),
        "p99_ms": col(99),
        "max_ms": col(100),
        "errors": errors,
    }


def window_entry(results: Sequence[Result]) -> dict[str, Any]:
    return {"requests": len(results), "latency_ms": latency(results), "errors": error_counts(results)}
