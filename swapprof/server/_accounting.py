"""Request accounting for the bake window, both ends: a generation counts, the master adds up.

A generation (with ``--bake-window``) counts every app request it answers in ``Interval``: how
many, how many failed (a 5xx, no response, or the app raised), and their latencies in a
fixed-bucket histogram. Every ``INTERVAL_S`` that saw a request (and once more right before it
stops accepting) it ships the interval to the master as one sd_notify field::

    SWAPPROF_REQUESTS=<CLOCK_MONOTONIC ns> <requests> <failed> <bucket>:<count>,<bucket>:<count>...

Buckets are log-spaced: bucket 0 holds latencies <= ``BASE_MS``, bucket i > 0 those in
(BASE_MS * GROWTH**(i-1), BASE_MS * GROWTH**i], the last one everything above. With GROWTH 1.1 a
bucket is 10 % wide: the rank test compares buckets (tied values), the medians are read off
them. The master keeps each process's intervals in a bounded ``Ledger`` and sums the windows it
compares (``Window``); nothing is sent per request.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

INTERVAL_S = 0.1
BASE_MS = 0.1
GROWTH = 1.1
BUCKETS = 160  # the last bucket's lower edge: 0.1 ms * 1.1**158, about 340 s
_INV_LOG_GROWTH = 1.0 / math.log(GROWTH)
LEDGER_INTERVALS = 4096
"""Intervals kept per process (at most 10 a second: more than a 300-s window needs)."""


def bucket_of(seconds: float) -> int:
    ms = seconds * 1000.0
    if ms <= BASE_MS:
        return 0
    return min(int(math.log(ms / BASE_MS) * _INV_LOG_GROWTH) + 1, BUCKETS - 1)


def bucket_ms(index: int) -> float:
    """A bucket's representative latency: the geometric middle of its edges."""
    if index <= 0:
        return BASE_MS / math.sqrt(GROWTH)
    return float(BASE_MS * GROWTH ** (index - 0.5))


class Interval:
    """What one generation process counted since the last ``take`` (its event loop thread only)."""

    __slots__ = ("failed", "hist", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.failed = 0
        self.hist = [0] * BUCKETS

    def observe(self, seconds: float, failed: bool) -> None:
        self.requests += 1
        if failed:
            self.failed += 1
        self.hist[bucket_of(seconds)] += 1

    def take(self, now_ns: int) -> str:
        """The interval as the wire value, and start a new one."""
        sparse = ",".join(f"{i}:{n}" for i, n in enumerate(self.hist) if n)
        text = f"{now_ns} {self.requests} {self.failed} {sparse}"
        self.requests = self.failed = 0
        self.hist = [0] * BUCKETS
        return text


@dataclass
class Window:
    """Requests summed over intervals (and processes): what the bake compares."""

    requests: int = 0
    failed: int = 0
    hist: Counter[int] = field(default_factory=Counter)

    def add(self, requests: int, failed: int, hist: dict[int, int]) -> None:
        self.requests += requests
        self.failed += failed
        self.hist.update(hist)

    @property
    def error_ratio(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def quantile_ms(self, q: float) -> float | None:
        total = sum(self.hist.values())
        if not total:
            return None
        rank, seen = q * total, 0
        for index in sorted(self.hist):
            seen += self.hist[index]
            if seen >= rank:
                return bucket_ms(index)
        return bucket_ms(max(self.hist))

    def summary(self) -> dict[str, object]:
        median, p99 = self.quantile_ms(0.5), self.quantile_ms(0.99)
        return {
            "requests": self.requests,
            "failed": self.failed,
            "error_ratio": round(self.error_ratio, 6),
            "median_ms": None if median is None else round(median, 3),
            "p99_ms": None if p99 is None else round(p99, 3),
        }


def decode(value: str) -> tuple[int, int, int, dict[int, int]] | None:
    """(stamp ns, requests, failed, histogram) of one wire value; None if malformed."""
    parts = value.split(" ")
    try:
        stamp, requests, failed = int(parts[0]), int(parts[1]), int(parts[2])
        hist: dict[int, int] = {}
        for item in parts[3].split(",") if len(parts) > 3 and parts[3] else ():
            index, _, count = item.partition(":")
            hist[min(max(int(index), 0), BUCKETS - 1)] = int(count)
    except (ValueError, IndexError):
        return None
    return stamp, requests, failed, hist


class Ledger:
    """One process's shipped intervals, as the master keeps them (bounded)."""

    def __init__(self) -> None:
        self.intervals: deque[tuple[int, int, int, dict[int, int]]] = deque(maxlen=LEDGER_INTERVALS)
        self.received = 0

    def add(self, value: str) -> None:
        interval = decode(value)
        if interval is not None:
            self.intervals.append(interval)
            self.received += 1

    def window(self, since_ns: int, until_ns: int, into: Window | None = None) -> Window:
        """Intervals shipped in (since_ns, until_ns], added to ``into`` (a new Window by default)."""
        window = Window() if into is None else into
        for stamp, requests, failed, hist in self.intervals:
            if since_ns < stamp <= until_ns:
                window.add(requests, failed, hist)
        return window
