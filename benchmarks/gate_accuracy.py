"""How often does `swapprof gate` cry wolf, and how often does it catch a real 150 ms regression?

    .venv/bin/python benchmarks/gate_accuracy.py [--runs 8] [--upgrades 10] [--delay-ms 150] [--save F]
    .venv/bin/python benchmarks/gate_accuracy.py --analyse F     # judge saved runs again, no benching

Benches the reference server --runs times with a test app whose import sleeps 0 ms ("A") and
--runs times with the same app slowed by --delay-ms at import ("B"), alternating A and B so both
see the same background noise. Then gates:
- false alarms: every ordered pair of different A runs (A/A), the share that fails;
- detection: every (A, B) pair, the share that fails, and the share whose failure names
  time_to_ready;
each for the first K upgrades of every run, K in (3, 5, --upgrades), with the default rules
(threshold 20%, 95% one-sided bound, 2000 resamples), judging time_to_ready relative to the
machine-speed yardstick (the default) and in raw ms (--raw). A failure "by errors" is the
server dropping a request, not the statistics. Writes benchmarks/results/gate_accuracy.json.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import precompile, write

from swapprof.gate import BenchConfig, GateOptions, LoadSpec, ReferenceTarget, bench, compare
from swapprof.gate._document import samples

SLOW_APP = """
import os
import time

time.sleep(float(os.environ.get("SLOW_IMPORT_MS", 0)) / 1000)

from swapprof.server.demo import app  # noqa: E402,F401
"""
MIX = (("/", 9.0), ("/slow?ms=50", 1.0))
MODES = ("yardstick", "raw")


def truncate(doc: dict[str, Any], k: int) -> dict[str, Any]:
    """The document as if only the first k upgrades had been benched."""
    out = copy.deepcopy(doc)
    out["upgrades"] = out["upgrades"][:k]
    out["samples"] = samples(out["upgrades"])
    out["errors"] = {kind: sum(u["errors"][kind] for u in out["upgrades"]) for kind in doc["errors"]}
    return out


def rates(pairs: list[tuple[dict[str, Any], dict[str, Any]]], k: int, normalize: bool) -> dict[str, Any]:
    failed: dict[str, int] = {}
    fails = 0
    for base, cur in pairs:
        verdict = compare(truncate(base, k), truncate(cur, k), GateOptions(normalize=normalize))
        fails += not verdict.passed
        for check in verdict.failed:
            failed[check.name] = failed.get(check.name, 0) + 1
    return {
        "pairs": len(pairs),
        "failed": fails,
        "rate": round(fails / max(1, len(pairs)), 4),
        "by_check": failed,
    }


def bench_runs(runs: int, upgrades: int, delay_ms: float) -> dict[str, list[dict[str, Any]]]:
    precompile()
    config = BenchConfig(upgrades=upgrades, interval_s=0.3, warmup_s=0.5, load=LoadSpec(paths=MIX))
    docs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="swapprof-accuracy-") as app_dir:
        (Path(app_dir) / "slowapp.py").write_text(SLOW_APP)
        for i in range(runs):
            for build, delay in (("A", 0.0), ("B", delay_ms)):
                t0 = time.monotonic()
                target = ReferenceTarget("slowapp:app", app_dir=app_dir, env={"SLOW_IMPORT_MS": str(delay)})
                docs[build].append(bench(target, config))
                print(f"run {i + 1}/{runs} {build}: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return docs


def analyse(docs: dict[str, list[dict[str, Any]]], upgrades: int) -> dict[str, Any]:
    aa = list(itertools.permutations(docs["A"], 2))
    ab = [(a, b) for a in docs["A"] for b in docs["B"]]
    ks = sorted({k for k in (3, 5, upgrades) if k <= upgrades})
    t0 = time.monotonic()
    result: dict[str, Any] = {
        "false_alarm": {f"{mode} K={k}": rates(aa, k, mode == "yardstick") for mode in MODES for k in ks},
        "detection": {f"{mode} K={k}": rates(ab, k, mode == "yardstick") for mode in MODES for k in ks},
    }
    result["gate_seconds_per_pair"] = round(
        (time.monotonic() - t0) / (len(aa) + len(ab)) / len(ks) / len(MODES), 3
    )
    for key in ("time_to_ready_ms", "yardstick_ms", "time_to_ready_norm"):
        result[f"run_medians_{key}"] = {
            build: [round(statistics.median(d["samples"][key]), 3) for d in runs]
            for build, runs in docs.items()
        }
    result["loadavg"] = [d["machine"]["loadavg"] for d in docs["A"] + docs["B"]]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=8, help="bench runs per build (default 8)")
    parser.add_argument("--upgrades", type=int, default=10, help="upgrades per run (default 10)")
    parser.add_argument("--delay-ms", type=float, default=150.0, help="import slowdown of build B")
    parser.add_argument("--save", metavar="FILE", help="also keep every run's results document here")
    parser.add_argument(
        "--analyse", metavar="FILE", help="judge the runs saved by --save instead of benching"
    )
    args = parser.parse_args()
    started = time.monotonic()
    if args.analyse:
        docs = json.loads(Path(args.analyse).read_text())
    else:
        docs = bench_runs(args.runs, args.upgrades, args.delay_ms)
        if args.save:
            Path(args.save).write_text(json.dumps(docs))
    runs, upgrades = len(docs["A"]), min(len(d["upgrades"]) for d in docs["A"] + docs["B"])
    result = {
        "runs_per_build": runs,
        "upgrades_per_run": upgrades,
        "delay_ms": args.delay_ms,
        "bench_seconds_per_run": None
        if args.analyse
        else round((time.monotonic() - started) / (2 * runs), 1),
        **analyse(docs, upgrades),
    }
    for key in result["false_alarm"]:
        fa, det = result["false_alarm"][key], result["detection"][key]
        print(
            f"{key:>15}: false alarms {fa['failed']}/{fa['pairs']} ({fa['rate']:.1%}) {fa['by_check']}; "
            f"detection of +{args.delay_ms:g} ms {det['failed']}/{det['pairs']} ({det['rate']:.1%}) {det['by_check']}"
        )
    print(
        f"bench: {result['bench_seconds_per_run']} s per run; gate: {result['gate_seconds_per_pair']} s per pair"
    )
    print(f"wrote {write('gate_accuracy', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
