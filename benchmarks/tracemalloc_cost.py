"""What tracemalloc costs at the frame depths ReloadTracker offers, and what a tracked reload costs.

    .venv/bin/python benchmarks/tracemalloc_cost.py [--rounds 21]

- slowdown of allocation-heavy workloads ("objects": small objects built and freed; "json":
  round trips of a nested document; "reload": ``importlib.reload`` of a generated 300-function
  module read from its .pyc) with tracemalloc off and tracing 1 (the tracker's default), 4, 16
  and 64 frames; short runs interleaved round by round in ABBA order; median of per-round
  ratios with a distribution-free 95 % interval;
- memory tracemalloc itself uses per live traced block, and the time of one snapshot and of
  grouping it by traceback (what the tracker does on each side of a reload: the stdlib's
  ``statistics("traceback")`` and the tracker's own grouping), with ~90 000 live blocks;
- one ``ReloadTracker.reload()`` of the generated module against a bare ``importlib.reload``.

All times are the process's CPU time (``time.process_time``), so other processes on a
shared machine inflate them less than wall time.

Prints tables and writes benchmarks/results/tracemalloc_cost.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, precompile, table, write

from swapprof.reload import ReloadTracker, _tracemalloc
from swapprof.reload._memory import DEFAULT_TRACEMALLOC_FRAMES

DEPTHS: tuple[int, ...] = (0, 1, 4, 16, 64)  # 0 = not tracing
DOC_TEXT = json.dumps({"users": [{"id": i, "name": f"u{i}", "tags": ["a", "b"]} for i in range(50)]})
MODULE = "swapprof_bench_generated"


class Item:
    def __init__(self, i: int) -> None:
        self.i = i
        self.name = f"item{i}"


def objects(n: int = 15_000) -> None:
    batch = []
    for i in range(n):
        batch.append(Item(i))
        if len(batch) == 1000:
            batch = []


def json_round_trips(n: int = 100) -> None:
    for _ in range(n):
        json.dumps(json.loads(DOC_TEXT))


def generated_module(directory: Path) -> ModuleType:
    lines = [
        f"def handler_{i}(request, _n={i}):\n    return [request, _n, {{'k': _n}}]\n" for i in range(300)
    ]
    lines += [f"class Model{i}:\n    def method(self):\n        return {i}\n" for i in range(30)]
    (directory / f"{MODULE}.py").write_text("\n".join(lines))
    sys.path.insert(0, str(directory))
    was, sys.dont_write_bytecode = sys.dont_write_bytecode, False  # write its .pyc as a service would
    try:
        return importlib.import_module(MODULE)
    finally:
        sys.dont_write_bytecode = was


def median_ci(values: list[float]) -> dict[str, float]:
    """Median with a distribution-free ~95 % interval (order statistics of a binomial)."""
    ordered, n = sorted(values), len(values)
    half = 0.98 * n**0.5
    low, high = max(0, int(n / 2 - half)), min(n - 1, int(n / 2 + half))
    return {"median": statistics.median(ordered), "ci95_low": ordered[low], "ci95_high": ordered[high]}


def slowdowns(rounds: int, module: ModuleType) -> dict[str, Any]:
    workloads: dict[str, Callable[[], None]] = {
        "objects": objects,
        "json": json_round_trips,
        "reload": lambda: [importlib.reload(module) for _ in range(5)] and None,
    }
    out: dict[str, Any] = {}
    for name, workload in workloads.items():
        times: dict[int, list[float]] = {d: [] for d in DEPTHS}
        workload()  # warm-up
        for round_ in range(rounds):
            for depth in DEPTHS if round_ % 2 else DEPTHS[::-1]:  # ABBA: cancels drift
                if depth:
                    tracemalloc.start(depth)
                t0 = time.process_time()
                workload()
                times[depth].append(time.process_time() - t0)
                if depth:
                    tracemalloc.stop()
        out[name] = {
            "off_ms": statistics.median(times[0]) * 1e3,
            "slowdown_pct": {
                str(d): median_ci([100 * (t / b - 1) for t, b in zip(times[d], times[0], strict=True)])
                for d in DEPTHS[1:]
            },
        }
    return out


def memory_and_snapshot(objects: int = 30_000) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for depth in DEPTHS[1:]:
        tracemalloc.start(depth)
        live = [[i] for i in range(objects)]  # a list object, its item array and an int each
        overhead = tracemalloc.get_tracemalloc_memory()
        t0 = time.process_time()
        snapshot = tracemalloc.take_snapshot()
        t1 = time.process_time()
        stats = snapshot.statistics("traceback")
        t2 = time.process_time()
        _tracemalloc.group(snapshot)
        t3 = time.process_time()
        tracemalloc.stop()
        out[str(depth)] = {
            "live_blocks": len(snapshot.traces),
            "tracemalloc_bytes": overhead,
            "tracemalloc_bytes_per_block": overhead / len(snapshot.traces),
            "snapshot_ms": (t1 - t0) * 1e3,
            "stdlib_statistics_traceback_ms": (t2 - t1) * 1e3,
            "swapprof_group_ms": (t3 - t2) * 1e3,
            "sites": len(stats),
        }
        del live, snapshot, stats
    return out


def tracked_reload(module: ModuleType, reloads: int = 10) -> dict[str, float]:
    t0 = time.process_time()
    for _ in range(reloads):
        importlib.reload(module)
    bare = (time.process_time() - t0) / reloads * 1e3
    with ReloadTracker([module]) as tracker:
        tracker.reload()  # warm-up
        t0 = time.process_time()
        for _ in range(reloads):
            tracker.reload()
        tracked = (time.process_time() - t0) / reloads * 1e3
    with ReloadTracker([module], count_objects=False, referrer_paths=0) as tracker:
        tracker.reload()
        t0 = time.process_time()
        for _ in range(reloads):
            tracker.reload()
        lean = (time.process_time() - t0) / reloads * 1e3
    return {"bare_reload_ms": bare, "tracked_reload_ms": tracked, "tracked_no_counts_no_paths_ms": lean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    pyc = precompile() + "; the generated module's .pyc was written on first import and read by reloads"
    with tempfile.TemporaryDirectory() as tmp:
        module = generated_module(Path(tmp))
        slow = slowdowns(args.rounds, module)
        memory = memory_and_snapshot()
        reload_cost = tracked_reload(module)
    depths = [str(d) for d in DEPTHS[1:]]
    rows = []
    for name, r in slow.items():
        cells = [r["slowdown_pct"][d] for d in depths]
        rows.append(
            [name, r["off_ms"]]
            + [f"{c['median']:+.0f} [{c['ci95_low']:+.0f}, {c['ci95_high']:+.0f}]" for c in cells]
        )
    print("slowdown % with tracemalloc tracing N frames: median [95% CI] of per-round ratios")
    print(table(["workload", "off ms", *[f"{d} frames" for d in depths]], rows))
    print()
    print(
        table(
            ["frames", "live blocks", "tracemalloc B/block", "snapshot ms", "stdlib grouping ms", "ours ms"],
            [
                [
                    d,
                    m["live_blocks"],
                    m["tracemalloc_bytes_per_block"],
                    m["snapshot_ms"],
                    m["stdlib_statistics_traceback_ms"],
                    m["swapprof_group_ms"],
                ]
                for d, m in memory.items()
            ],
        )
    )
    print()
    print(table(["reload of a 300-function module", "ms"], [[k, v] for k, v in reload_cost.items()]))
    path = write(
        "tracemalloc_cost",
        {
            "machine": machine(),
            "loadavg_at_end": os.getloadavg(),
            "pyc": pyc,
            "rounds": args.rounds,
            "default_frames": DEFAULT_TRACEMALLOC_FRAMES,
            "slowdown": slow,
            "memory_and_snapshot": memory,
            "reload": reload_cost,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
