"""A cap on profile requests that take time (``/profile``, or any ``?seconds=``): each holds a
thread for its whole duration, so without a cap 200 concurrent ``?seconds=300`` requests are
200 threads. Over the cap the answer is 429 with ``Retry-After`` (when the first running one
ends)."""

from __future__ import annotations

import itertools
import math
import threading
import time

MAX_TIMED_REQUESTS = 4


class Slots:
    def __init__(self, limit: int = MAX_TIMED_REQUESTS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._ends: dict[int, float] = {}
        self._ids = itertools.count()

    def take(self, seconds: float) -> int | None:
        """A slot for a request of ``seconds``, or None when all are taken."""
        with self._lock:
            if len(self._ends) >= self.limit:
                return None
            slot = next(self._ids)
            self._ends[slot] = time.monotonic() + seconds
            return slot

    def give(self, slot: int) -> None:
        with self._lock:
            self._ends.pop(slot, None)

    def retry_after(self) -> int:
        """Whole seconds until the first running request is due to end (at least 1)."""
        with self._lock:
            first = min(self._ends.values(), default=time.monotonic())
        return max(1, math.ceil(first - time.monotonic()))
