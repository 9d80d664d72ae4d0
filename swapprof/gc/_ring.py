"""Preallocated rings of GC pauses, one per generation: written lock-free by the gc callback.

The callback runs inside CPython's collector. It takes no lock and creates no container: it
writes into preallocated list slots by index (the only objects it makes are the ints of clock
readings and sums, which replace the previous ints in their slots, so memory stays fixed; lists,
because an ``array('q')`` store costs ten times a list store). CPython runs one collection at a
time with the GIL held, so there is one writer. A generation's running count is its ring's head,
so frequent young collections never push a rare full collection out of its ring.

A reader copies the slots published since its last read. Slots the writer lapped are dropped;
the per-generation totals, read consistently under the ``epoch`` seqlock, give the number and
total time of those missed pauses, so counts and sums stay exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

GENERATIONS = 3
GcCallback = Callable[[str, dict[str, int]], None]


@dataclass(frozen=True, slots=True)
class GCPause:
    """One collection: ``start_ns`` on the ``time.perf_counter_ns`` clock, ``start_unix_ns`` on the wall clock."""

    generation: int
    start_ns: int
    start_unix_ns: int
    duration_s: float
    collected: int
    uncollectable: int

    @property
    def end_ns(self) -> int:
        return self.start_ns + round(self.duration_s * 1e9)

    def to_dict(self) -> dict[str, int | float]:
        return {
            "generation": self.generation,
            "start_unix_ns": self.start_unix_ns,
            "duration_s": self.duration_s,
            "collected": self.collected,
            "uncollectable": self.uncollectable,
        }


@dataclass(frozen=True, slots=True)
class Missed:
    """Pauses of one generation lapped in the ring before a reader saw them."""

    generation: int
    count: int
    total_ns: int


def _zeros(n: int) -> list[int]:
    return [0] * n


def clock_offset_ns() -> int:
    """Wall clock minus ``perf_counter_ns``, read between two perf readings (best of three)."""
    best = (1 << 62, 0)
    for _ in range(3):
        before = time.perf_counter_ns()
        wall = time.time_ns()
        after = time.perf_counter_ns()
        best = min(best, (after - before, wall - (before + after) // 2))
    return best[1]


class PauseRing:
    """``capacity`` (a power of two) preallocated pause slots per generation, plus totals.

    ``epoch`` is a seqlock: odd while the callback writes.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.mask = capacity - 1
        self.epoch = _zeros(1)
        self.started = _zeros(1)
        # slot columns (generation g uses [g * capacity, (g + 1) * capacity)):
        # start (perf_counter ns), duration (ns), collected, uncollectable
        self.slots = tuple(_zeros(GENERATIONS * capacity) for _ in range(4))
        # per generation: collections (= published slots), duration sum (ns), collected,
        # uncollectable, worst (ns)
        self.totals = tuple(_zeros(GENERATIONS) for _ in range(5))
        self.tail = [0] * GENERATIONS
        self.seen_count = [0] * GENERATIONS  # pauses a reader has accounted for, and their time
        self.seen_sum = [0] * GENERATIONS

    def make_callback(self) -> GcCallback:
        """The function to put in ``gc.callbacks``; it only writes into this ring."""
        clock, epoch, started, mask = time.perf_counter_ns, self.epoch, self.started, self.mask
        base = tuple(g * self.capacity for g in range(GENERATIONS))
        s_start, s_dur, s_col, s_unc = self.slots
        n_count, n_sum, n_col, n_unc, n_max = self.totals
        started[0] = 0

        def swapprof_gc_callback(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = clock()
                return
            start = started[0]
            if not start:  # installed during a collection: its start was not seen
                return
            dur = clock() - start
            e = epoch[0] + 1
            epoch[0] = e  # odd: writing
            gen = info["generation"]
            collected = info["collected"]
            uncollectable = info["uncollectable"]
            seq = n_count[gen]
            i = base[gen] + (seq & mask)
            s_start[i] = start
            s_dur[i] = dur
            s_col[i] = collected
            s_unc[i] = uncollectable
            n_count[gen] = seq + 1  # published
            n_sum[gen] += dur
            n_col[gen] += collected
            n_unc[gen] += uncollectable
            if dur > n_max[gen]:
                n_max[gen] = dur
            epoch[0] = e + 1  # even: consistent

        return swapprof_gc_callback

    def read(self) -> tuple[list[GCPause], list[Missed]]:
        """Pauses published since the last read (in time order), and those lapped before it.

        Not thread-safe: one reader at a time (the writer needs no coordination).
        """
        s_start, s_dur, s_col, s_unc = self.slots
        cap, first_epoch = self.capacity, self.epoch[0]
        heads = list(self.totals[0])
        rows = []
        for gen in range(GENERATIONS):
            for seq in range(max(self.tail[gen], heads[gen] - cap), heads[gen]):
                i = gen * cap + (seq & self.mask)
                rows.append((gen, seq, s_start[i], s_dur[i], s_col[i], s_unc[i]))
        counts, sums = list(self.totals[0]), list(self.totals[1])
        last_epoch = self.epoch[0]
        self.tail = heads
        offset = clock_offset_ns()
        pauses: list[GCPause] = []
        for gen, seq, start, dur, col, unc in rows:
            # the writer may have lapped this slot while it was read (odd: it may be writing now)
            if seq <= counts[gen] - 1 + (last_epoch & 1) - cap:
                continue
            self.seen_count[gen] += 1
            self.seen_sum[gen] += dur
            pauses.append(GCPause(gen, start, start + offset, dur / 1e9, col, unc))
        pauses.sort(key=lambda p: p.start_ns)
        missed: list[Missed] = []
        if first_epoch == last_epoch and not first_epoch & 1:  # totals match the heads exactly
            for gen in range(GENERATIONS):
                if counts[gen] > self.seen_count[gen]:
                    missed.append(
                        Missed(gen, counts[gen] - self.seen_count[gen], sums[gen] - self.seen_sum[gen])
                    )
                    self.seen_count[gen], self.seen_sum[gen] = counts[gen], sums[gen]
        return pauses, missed
