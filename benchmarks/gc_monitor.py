"""What GCMonitor costs, beside prometheus_client's GC collector, measured in one run.

    .venv/bin/python benchmarks/gc_monitor.py [--rounds 101]

- callback: the monitor's callback pair (start + stop) called directly, and a no-op pair;
- per collection: ``gc.collect(0)`` on an empty young generation with no callback, with a no-op
  callback (CPython's own cost of calling any callback: it builds the info dict, calls twice)
  and with the monitor: nanoseconds added per collection (best of interleaved repeats);
- GC-heavy workloads ("cycles": cyclic garbage only; "survivors": object graphs that live a while)
  run with nothing, with a no-op gc callback (CPython's share), with GCMonitor installed, with
  prometheus_client's GCCollector registered
  (it reads ``gc.get_stats()`` at scrape time and has no callback, so it costs nothing during
  the run), and with both; many short runs, configurations interleaved round by round in ABBA
  order; slowdown = median over rounds of each round's time ratio to "none", with a
  distribution-free 95 % interval;
- reader side: one OTel metric collection after a run (drains the rings: one SDK ``record``
  per pause), and one prometheus scrape of the GC collector.

All times are the process's CPU time (``time.process_time``), so other processes on a
shared machine inflate them less than wall time.

Prints a table and writes benchmarks/results/gc_monitor.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, precompile, table, write
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector

from swapprof.gc import GCMonitor
from swapprof.gc._ring import PauseRing


class Item:
    def __init__(self, i: int) -> None:
        self.i = i
        self.tags = [i, str(i)]


def cycles(n: int = 30_000) -> None:
    """Cyclic garbage only: every young collection frees what it scans."""
    for i in range(n):
        node: dict[str, Any] = {"i": i}
        node["self"] = [node]


def survivors(batches: int = 2, size: int = 10_000) -> None:
    """Object graphs that live for a while (a request's worth), so young collections scan and
    promote live objects; the last one of a batch is freed by reference counting."""
    for _ in range(batches):
        batch = [Item(i) for i in range(size)]
        json.dumps([item.tags for item in batch])
        del batch


WORKLOADS: dict[str, Callable[[], None]] = {"cycles": cycles, "survivors": survivors}


def median_ci(values: list[float]) -> dict[str, float]:
    """Median with a distribution-free ~95 % interval (order statistics of a binomial)."""
    ordered, n = sorted(values), len(values)
    half = 0.98 * n**0.5
    low, high = max(0, int(n / 2 - half)), min(n - 1, int(n / 2 + half))
    return {"median": statistics.median(ordered), "ci95_low": ordered[low], "ci95_high": ordered[high]}


def callback_costs(repeats: int = 40, loops: int = 10_000) -> dict[str, float]:
    """Best (least disturbed) ns per call over interleaved short repeats."""
    callback = PauseRing(4096).make_callback()
    monitor_callback = PauseRing(4096).make_callback()  # what GCMonitor.install() appends
    info = {"generation": 0, "collected": 0, "uncollectable": 0}

    def noop(phase: str, info: dict[str, int]) -> None:
        pass

    def pair(cb: Callable[[str, dict[str, int]], None]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(loops):
                cb("start", info)
                cb("stop", info)

        return run

    def collect() -> None:
        for _ in range(loops):
            gc.collect(0)

    # name -> (callback installed while timing, or None; the timed function)
    cases: dict[str, tuple[Callable[[str, dict[str, int]], None] | None, Callable[[], None]]] = {
        "callback_pair_ns": (None, pair(callback)),
        "noop_pair_ns": (None, pair(noop)),
        "collect0_none_ns": (None, collect),
        "collect0_noop_callback_ns": (noop, collect),
        "collect0_monitor_ns": (monitor_callback, collect),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, (installed, run) in cases.items():
            if installed is not None:
                gc.callbacks.append(installed)
            t0 = time.process_time_ns()
            run()
            best[name] = min(best[name], (time.process_time_ns() - t0) / loops)
            if installed is not None:
                gc.callbacks.remove(installed)
    best["added_per_collection_ns"] = best["collect0_monitor_ns"] - best["collect0_none_ns"]
    best["added_by_monitor_code_ns"] = best["collect0_monitor_ns"] - best["collect0_noop_callback_ns"]
    return best


def timed(workload: Callable[[], None]) -> tuple[float, int]:
    gc.collect()  # every run starts from the same heap state
    before = sum(s["collections"] for s in gc.get_stats())
    t0 = time.process_time()
    workload()
    seconds = time.process_time() - t0
    return seconds, sum(s["collections"] for s in gc.get_stats()) - before


def workloads(rounds: int) -> dict[str, Any]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monitor = GCMonitor(meter_provider=provider)
    registry = CollectorRegistry()
    GCCollector(registry=registry)
    configs = ("none", "noop_callback", "gcmonitor", "prometheus", "both")

    def noop(phase: str, info: dict[str, int]) -> None:
        pass

    results: dict[str, Any] = {}
    for name, workload in WORKLOADS.items():
        times: dict[str, list[float]] = {c: [] for c in configs}
        collections: list[int] = []
        reader_ms: list[float] = []
        scrape_ms: list[float] = []
        workload()  # warm-up
        for round_ in range(rounds):
            for config in configs if round_ % 2 else reversed(configs):  # ABBA: cancels drift
                if config in ("gcmonitor", "both"):
                    monitor.install()
                if config == "noop_callback":
                    gc.callbacks.append(noop)
                seconds, n = timed(workload)
                if config == "noop_callback":
                    gc.callbacks.remove(noop)
                times[config].append(seconds)
                collections.append(n)
                if config in ("gcmonitor", "both"):
                    t0 = time.process_time()
                    reader.get_metrics_data()
                    reader_ms.append((time.process_time() - t0) * 1e3)
                    monitor.uninstall()
                if config in ("prometheus", "both"):
                    t0 = time.process_time()
                    generate_latest(registry)
                    scrape_ms.append((time.process_time() - t0) * 1e3)
        base = times["none"]
        median_collections = statistics.median(collections)
        added_ns = [(t - b) * 1e9 / median_collections for t, b in zip(times["gcmonitor"], base, strict=True)]
        results[name] = {
            "median_ms": {c: statistics.median(v) * 1e3 for c, v in times.items()},
            "collections_per_run": median_collections,
            "slowdown_pct": {
                c: median_ci([100 * (t / b - 1) for t, b in zip(times[c], base, strict=True)])
                for c in configs[1:]
            },
            "added_per_collection_ns_from_workload": median_ci(added_ns),
            "otel_collection_ms": statistics.median(reader_ms),
            "otel_us_per_pause": statistics.median(reader_ms) * 1e3 / median_collections,
            "prometheus_scrape_ms": statistics.median(scrape_ms),
        }
    provider.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=101)
    args = parser.parse_args()
    pyc = precompile()
    costs = callback_costs()
    loads = workloads(args.rounds)
    print(
        table(
            ["per collection", "ns"],
            [
                ["monitor callback pair, called directly", costs["callback_pair_ns"]],
                ["no-op callback pair, called directly", costs["noop_pair_ns"]],
                ["gc.collect(0), no callback", costs["collect0_none_ns"]],
                ["gc.collect(0), no-op callback", costs["collect0_noop_callback_ns"]],
                ["gc.collect(0), GCMonitor", costs["collect0_monitor_ns"]],
                ["added per collection by GCMonitor", costs["added_per_collection_ns"]],
            ],
        )
    )
    print()
    rows = []
    for name, r in loads.items():
        for config, c in r["slowdown_pct"].items():
            rows.append(
                [
                    name,
                    config,
                    r["collections_per_run"],
                    r["median_ms"]["none"],
                    r["median_ms"][config],
                    f"{c['median']:+.2f} [{c['ci95_low']:+.2f}, {c['ci95_high']:+.2f}]",
                ]
            )
    print(
        table(["workload", "with", "collections", "none ms", "with ms", "slowdown % median [95% CI]"], rows)
    )
    print()
    rows = []
    for name, r in loads.items():
        added = r["added_per_collection_ns_from_workload"]
        rows.append(
            [
                name,
                f"{added['median']:.0f} [{added['ci95_low']:.0f}, {added['ci95_high']:.0f}]",
                r["otel_collection_ms"],
                r["otel_us_per_pause"],
                r["prometheus_scrape_ms"],
            ]
        )
    headers = ["workload", "ns/collection [95% CI]", "OTel collection ms", "us/pause", "prometheus scrape ms"]
    print(table(headers, rows))
    path = write(
        "gc_monitor",
        {
            "machine": machine(),
            "loadavg_at_end": os.getloadavg(),
            "pyc": pyc,
            "rounds": args.rounds,
            "per_collection": costs,
            "workloads": loads,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
