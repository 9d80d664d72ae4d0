"""Overhead of swapprof's CPU sampler (100 Hz, 1 kHz) and of py-spy on a CPU-bound workload,
and the time to encode 100k samples as gzipped profile.proto.

    .venv/bin/python benchmarks/pprof_overhead.py [--rounds 5] [--work 1.0]

Each round runs the same single-threaded pure-Python workload once per condition (interleaved,
so drift on a shared machine hits them alike). Per condition:

- profiler CPU: CPU time of the sampler thread (or of the py-spy process) per CPU second of the
  workload. The sampler holds the GIL while it samples, so this is the share of time the
  workload cannot run: overhead ratio = 1 + this. The steady figure on a busy machine.
- wall ratio: median of per-round wall-time ratios to no profiling, and the ratio of the best
  runs. py-spy --native stops the process for each sample; only these show that cost, and on
  a shared machine they carry its noise.

Prints a table and writes benchmarks/results/pprof_overhead.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from swapprof.pprof import Profile, ProfileError, cpu_profile, encode_profile
from swapprof.pprof._cpu import Sampler
from swapprof.pprof._proto import encode_raw
from swapprof.pprof._pyspy import find_pyspy

RESULTS = Path(__file__).resolve().parent / "results" / "pprof_overhead.json"


def workload(n: int) -> int:
    """CPU-bound pure Python: nested calls, a loop and a dict, so stacks have some depth."""

    def step(i: int, table: dict[int, int]) -> int:
        table[i % 97] = table.get(i % 89, 0) + i
        return table[i % 97] & 0xFFFF

    total, table = 0, {}
    for i in range(n):
        total += step(i, table)
    return total


def calibrate(seconds: float) -> int:
    n, took = 50_000, 0.0
    while took < 0.2:
        n *= 2
        started = time.perf_counter()
        workload(n)
        took = time.perf_counter() - started
    return int(n * seconds / took)


Profiler = Callable[[threading.Event, dict[str, float]], None]


def timed(n: int, profiler: Profiler | None, settle: float) -> dict[str, float]:
    """One run: wall time, the workload thread's CPU, and the profiler's own CPU meanwhile."""
    stop, report = threading.Event(), {}  # the profiler reports its CPU time and sampling rate
    runner = threading.Thread(target=profiler, args=(stop, report)) if profiler else None
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if runner:
        runner.start()
        time.sleep(settle)  # let py-spy attach before the clock starts (a benchmark, not a test)
    started, cpu = time.perf_counter(), time.thread_time()
    workload(n)
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    stop.set()
    if runner:
        runner.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # py-spy, reaped by now
    child = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"wall": wall, "cpu": cpu, "profiler_cpu": report.get("cpu_s", 0.0) + child, **report}


def sampler(hz: int, mode: str = "cpu") -> Profiler:
    def run(stop: threading.Event, report: dict[str, float]) -> None:
        sampling = Sampler(hz, mode)
        sampling.start()
        stop.wait()
        profile = sampling.stop()
        ticks = sum(
            v[0] for (_s, labels), v in profile.samples.items() if ("thread_name", "MainThread") in labels
        )
        report["cpu_s"] = sampling.cpu_ns / 1e9
        report["workload_samples_per_s"] = ticks / (profile.duration_nanos / 1e9)

    return run


def pyspy(hz: int, native: bool) -> Profiler:
    def run(stop: threading.Event, report: dict[str, float]) -> None:
        profile = cpu_profile(3600, hz=hz, backend="py-spy", native=native, stop=stop)
        ticks = sum(
            v[0] for (_s, labels), v in profile.samples.items() if ("thread_name", "MainThread") in labels
        )
        report["workload_samples_per_s"] = ticks / (profile.duration_nanos / 1e9)

    return run


def encoding() -> dict[str, float | int]:
    rng = random.Random(7)
    frames = [(f"Handler{i % 9}.method_{i}", f"/srv/app/pkg/mod{i % 120}.py", i, i + 4) for i in range(5000)]
    kinds = [("samples", "count"), ("cpu", "nanoseconds")]
    distinct = Profile(kinds, ("cpu", "nanoseconds"), 10_000_000)
    for i in range(100_000):  # worst case: every sample its own stack
        stack = tuple(rng.choice(frames) for _ in range(rng.randint(8, 40)))
        distinct.add(
            stack, [1, 10_000_000], (("thread_id", str(100 + i % 32)), ("thread_name", f"w{i % 32}"))
        )
    paths = [tuple(rng.choice(frames) for _ in range(rng.randint(8, 40))) for _ in range(3000)]
    realistic = Profile(kinds, ("cpu", "nanoseconds"), 10_000_000)
    for i in range(100_000):  # 100 Hz x 30 s x 33 threads, aggregated as the sampler does
        thread = i % 33
        realistic.add(
            paths[int(rng.paretovariate(1.2)) % len(paths)], [1, 10_000_000], (("thread_id", str(thread)),)
        )
    out: dict[str, float | int] = {
        "distinct_samples": len(distinct.samples),
        "realistic_samples": len(realistic.samples),
    }
    for name, profile in (("distinct", distinct), ("realistic", realistic)):
        walls, cpus = [], []
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            data = encode_profile(profile)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        raw_wall = time.perf_counter()
        encode_raw(profile)
        out[f"{name}_encode_s"] = round(min(walls), 3)
        out[f"{name}_encode_cpu_s"] = round(min(cpus), 3)
        out[f"{name}_raw_only_s"] = round(time.perf_counter() - raw_wall, 3)
        out[f"{name}_gzip_bytes"] = len(data)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=float, default=1.0, help="seconds of workload per run")
    args = parser.parse_args()
    n = calibrate(args.work)
    conditions: dict[str, tuple[Profiler | None, float]] = {
        "none": (None, 0.0),
        "sampler 100 Hz": (sampler(100), 0.0),
        "sampler 1 kHz": (sampler(1000), 0.0),
        "sampler 100 Hz wall": (sampler(100, "wall"), 0.0),
    }
    try:
        find_pyspy()
        conditions["py-spy 100 Hz --native"] = (pyspy(100, True), 1.0)
        conditions["py-spy 100 Hz --nonblocking"] = (pyspy(100, False), 1.0)
    except ProfileError as exc:
        print(f"py-spy skipped: {exc}", file=sys.stderr)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in conditions}
    load_before = os.getloadavg()
    for _round in range(args.rounds):
        for name, (profiler, settle) in conditions.items():
            runs[name].append(timed(n, profiler, settle))
    base = runs["none"]
    overhead = {}
    for name, rows in runs.items():
        overhead[name] = {
            # the steady figure: profiler CPU per workload CPU (sampling holds the GIL, so this
            # is time the single-threaded workload cannot run); py-spy's is its own process
            "profiler_cpu_share": round(statistics.median(r["profiler_cpu"] / r["cpu"] for r in rows), 4),
            # per-round wall ratios (rounds interleave, so drift hits both alike), and best runs
            "wall_ratio": round(
                statistics.median(r["wall"] / b["wall"] for r, b in zip(rows, base, strict=True)), 3
            ),
            "wall_best_ratio": round(min(r["wall"] for r in rows) / min(b["wall"] for b in base), 3),
            # samples/s the workload thread actually got: a CPU-bound thread hands the GIL over
            # every 5 ms (sys.getswitchinterval), which caps an in-process sampler near 200 Hz
            "workload_samples_per_s": round(
                statistics.median(r.get("workload_samples_per_s", 0) for r in rows), 1
            ),
            "runs": [{k: round(v, 4) for k, v in r.items()} for r in rows],
        }
    enc = encoding()
    pyspy_version = ""
    with contextlib.suppress(ProfileError, OSError):
        pyspy_version = subprocess.run([find_pyspy(), "--version"], capture_output=True, text=True).stdout
    result = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "py_spy": pyspy_version.strip(),
        "workload_iterations": n,
        "rounds": args.rounds,
        "overhead": overhead,
        "encoding": enc,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{'condition':<30} {'profiler CPU':>13} {'wall ratio':>11} {'best-run ratio':>15} {'samples/s':>10}"
    )
    for name, row in overhead.items():
        share = f"{100 * row['profiler_cpu_share']:.2f}%"
        print(
            f"{name:<30} {share:>13} {row['wall_ratio']:>11.3f} {row['wall_best_ratio']:>15.3f} "
            f"{row['workload_samples_per_s']:>10.1f}"
        )
    print()
    print(
        f"encode 100k distinct samples: {enc['distinct_encode_s']:.3f} s wall, {enc['distinct_encode_cpu_s']:.3f} s CPU ({enc['distinct_gzip_bytes']} bytes)"
    )
    print(
        f"encode 100k raw samples ({enc['realistic_samples']} distinct): {enc['realistic_encode_s']:.3f} s wall, {enc['realistic_encode_cpu_s']:.3f} s CPU"
    )
    print(
        f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
