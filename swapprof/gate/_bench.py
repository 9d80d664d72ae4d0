"""``swapprof bench``: K upgrades of a target under load, every request recorded, one document.

Timeline of a run: start the target, start the load, warm up, then K times: time the
machine-speed yardstick (``_yardstick.py``), upgrade (blocking until it ended), wait
``interval`` in steady state, read the serving generation's fds and RSS.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from swapprof.gate._document import document
from swapprof.gate._load import LoadGenerator, Result, error_counts
from swapprof.gate._machine import loadavg, machine
from swapprof.gate._progress import Progress
from swapprof.gate._target import Target
from swapprof.gate._yardstick import measure as measure_yardstick


@dataclass
class LoadSpec:
    """keep-alive clients + new-connection clients; ``rate`` req/s in total (0: as fast as they can)."""

    clients: int = 4
    new_clients: int = 2
    rate: float = 100.0
    paths: tuple[tuple[str, float], ...] = (("/", 1.0),)
    timeout_s: float = 10.0
    seed: int = 1

    def generators(self, address: str) -> list[LoadGenerator]:
        total = self.clients + self.new_clients
        made = []
        for mode, count, seed in (
            ("keepalive", self.clients, self.seed),
            ("new", self.new_clients, self.seed + 1),
        ):
            if count:
                rate = self.rate * count / total if self.rate else None
                made.append(
                    LoadGenerator(
                        address,
                        concurrency=count,
                        mode=mode,
                        paths=self.paths,
                        rate=rate,
                        timeout=self.timeout_s,
                        seed=seed,
                    )
                )
        return made


@dataclass
class BenchConfig:
    upgrades: int = 10
    interval_s: float = 1.0
    warmup_s: float = 1.0
    load: LoadSpec = field(default_factory=LoadSpec)
    keep_requests: bool = False
    yardstick: bool = True


def _status(entry: dict[str, Any], results: list[Result]) -> str:
    ttr = entry.get("time_to_ready_ms")
    ready = f"ready {ttr:.0f} ms" if ttr is not None else str(entry.get("reason"))
    return (
        f"{entry['outcome']} {ready}, {len(results)} requests, {sum(error_counts(results).values())} errors"
    )


def yardstick(config: BenchConfig, timed: list[tuple[int, int]]) -> float | None:
    """Time the yardstick (if configured); note when, so its CPU load is kept out of "steady"."""
    if not config.yardstick:
        return None
    start = time.monotonic_ns()
    value = measure_yardstick()
    timed.append((start, time.monotonic_ns()))
    return value


def yardstick_fields(before: float | None, after: float | None) -> dict[str, float | None]:
    both = [v for v in (before, after) if v is not None]
    mean = round(sum(both) / len(both), 3) if both else None
    return {"yardstick_ms": mean, "yardstick_before_ms": before, "yardstick_after_ms": after}


def run(target: Target, config: BenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Bench ``target`` (started and stopped here); return the results document."""
    progress = progress or Progress(config.upgrades, enabled=False)
    facts, load_start = machine(), loadavg()
    loads: list[LoadGenerator] = []
    try:
        target.start()
        progress.note(f"target up at {target.address}; load running, warming up {config.warmup_s:g} s")
        loads = [g.start() for g in config.load.generators(target.address)]
        zero = time.monotonic_ns()
        time.sleep(config.warmup_s)
        steady_from = time.monotonic_ns()
        generations = [target.generation()]
        entries: list[dict[str, Any]] = []
        windows: list[tuple[int, int]] = []
        timed: list[tuple[int, int]] = []
        for index in range(1, config.upgrades + 1):
            before = yardstick(config, timed)
            t0 = time.monotonic_ns()
            entry = target.upgrade()
            windows.append((t0, time.monotonic_ns()))
            after = yardstick(config, timed)
            entries.append({"index": index, **entry, **yardstick_fields(before, after)})
            progress.step(_status(entry, [r for g in loads for r in g.results]))
            time.sleep(config.interval_s)
            generations.append(target.generation())
    finally:
        results = [r for g in loads for r in g.stop()]
        end = time.monotonic_ns()
        progress.close()
        target.stop()
    doc = document(results, entries, windows, zero, steady_from, end, timed)
    doc.update(
        machine={**facts, "loadavg": load_start, "loadavg_end": loadavg()},
        target=target.describe(),
        config=asdict(config),
        generations=generations,
    )
    if config.keep_requests:
        doc["requests_raw"] = [
            [
                round((r.start_ns - zero) / 1e6, 3),
                round((r.end_ns - r.start_ns) / 1e6, 3),
                r.path,
                r.status,
                r.error,
                r.reused,
                r.retried,
            ]
            for r in sorted(results, key=lambda r: r.start_ns)
        ]
    return doc
