"""The bake window, one run: how fast a bad version is rolled back, how often a good one is.

    .venv/bin/python benchmarks/bake.py [--trials 5] [--window 5] [--good 100] [--good-window 2]
                                        [--rate 200] [--cost-rounds 3] [--cost-seconds 10]

Part 1, regressions (the test app of tests/_apps.py, --bake-window WINDOW, LoadGenerator at RATE
req/s over 32 keep-alive clients): per trial, the old generation's window fills, the app turns
bad (500 on 1 request in 5; or 80 ms slower per request), one upgrade; reported: the verdict,
switch -> verdict, switch -> the old generation accepting again, how many requests the bad
version answered, and client connection errors. The same server runs every trial (after a
rollback generation 1 serves on).
Part 2, false rollbacks: GOOD upgrades of the unchanged app under the same load, --bake-window
GOOD_WINDOW; counted: verdicts other than pass.
Part 3: the parked generation's memory (RSS/PSS summed over its workers, from the records), and
the throughput cost of request accounting: wrk -t2 -c16 against the demo app with --bake-window 0
and 5 (accounting on), alternating, COST_ROUNDS rounds of COST_SECONDS; and, because on a shared
machine that difference drowns in noise, the middleware's own added time per request measured
in-process (min of 15 x 50,000 calls with and without counting), as a fraction of the time per
request at wrk's rate. ``--parts cost`` re-measures only part 3 into an existing results file.
Prints tables and writes benchmarks/results/bake.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import _wrk
from _common import machine, precompile, summary, table, write

from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess
from tests._apps import set_fault, write_faulty_app

CONNECTION_ERRORS = ("refused", "reset", "closed", "timeout", "malformed")


def _wait_requests(load: LoadGenerator, count: int, timeout: float = 120.0) -> None:
    start, deadline = len(load.results), time.monotonic() + timeout
    while len(load.results) < start + count:
        if time.monotonic() > deadline:
            raise RuntimeError("the load generator stalled")
        time.sleep(0.05)


def regressions(app_dir: Path, fault: str, trials: int, window: float, rate: float) -> dict[str, Any]:
    args = ["--app-dir", str(app_dir), "--bake-window", str(window)]
    rows: list[dict[str, Any]] = []
    set_fault(app_dir, "")
    with ServerProcess("faultyapp:app", args=args) as server:
        load = LoadGenerator(server.address, concurrency=32, rate=rate).start()
        try:
            for _ in range(trials):
                _wait_requests(load, int(rate * window * 1.2))
                set_fault(app_dir, fault)
                record = server.upgrade()
                set_fault(app_dir, "")
                bake = record.get("bake") or {}
                rows.append(
                    {
                        "outcome": record["outcome"],
                        "reason": record["reason"],
                        "decided_ms": bake.get("decided_ms"),
                        "resumed_ms": bake.get("resumed_ms"),
                        "bad_answered": (bake.get("new") or {}).get("requests"),
                        "old_window": (bake.get("old") or {}).get("requests"),
                        "parked_rss_kb": bake.get("parked_rss_kb"),
                        "parked_pss_kb": bake.get("parked_pss_kb"),
                        "service_gap_ms": record.get("service_gap_ms"),
                        "handback_overlap_ms": bake.get("handback_overlap_ms"),
                    }
                )
        finally:
            results = load.stop()
    errors = error_counts(results)
    return {"trials": rows, "client_errors": errors, "requests": len(results)}


def good_upgrades(app_dir: Path, count: int, window: float, rate: float) -> dict[str, Any]:
    args = ["--app-dir", str(app_dir), "--bake-window", str(window)]
    set_fault(app_dir, "")
    verdicts: dict[str, int] = {}
    false: list[dict[str, Any]] = []
    rss: list[int] = []
    with ServerProcess("faultyapp:app", args=args) as server:
        load = LoadGenerator(server.address, concurrency=32, rate=rate).start()
        try:
            _wait_requests(load, int(rate * window * 1.2))
            for _ in range(count):
                record = server.upgrade()
                bake = record.get("bake") or {}
                verdicts[bake.get("verdict", "none")] = verdicts.get(bake.get("verdict", "none"), 0) + 1
                if bake.get("parked_rss_kb"):
                    rss.append(bake["parked_rss_kb"])
                if record["outcome"] != "success":
                    false.append({"reason": record["reason"], "detail": record["detail"], "bake": bake})
        finally:
            results = load.stop()
    return {
        "upgrades": count,
        "window_s": window,
        "verdicts": verdicts,
        "false_rollbacks": len(false),
        "false": false,
        "client_errors": error_counts(results),
        "parked_rss_kb_median": statistics.median(rss) if rss else None,
    }


def accounting_cost(rounds: int, seconds: float) -> dict[str, Any]:
    rps: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for name, window in (("off", "0"), ("on", "5")):
            with ServerProcess(args=["--bake-window", window]) as server:
                _wrk.run(f"{server.url}/", 2)  # warm-up
                rps[name].append(_wrk.run(f"{server.url}/", seconds)["rps"])
    off, on = statistics.median(rps["off"]), statistics.median(rps["on"])
    micro = middleware_cost_ns()
    share = micro["extra_ns"] * 1e-9 * off  # added time per request / time per request at wrk's rate
    return {"rps": rps, "median_off": off, "median_on": on, "cost": 1 - on / off, "middleware": micro,
            "middleware_share": share}  # fmt: skip


def middleware_cost_ns() -> dict[str, float]:
    """The HandoffMiddleware's time per request with and without counting (min of 15 runs)."""
    from swapprof.server._accounting import Interval
    from swapprof.server.generation._serving import HandoffMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def nothing(*_: Any) -> Any:
        return {}

    async def per_call(middleware: HandoffMiddleware, n: int = 50_000) -> float:
        scope = {"type": "http", "path": "/", "headers": []}
        start = time.perf_counter()
        for _ in range(n):
            await middleware(scope, nothing, nothing)
        return (time.perf_counter() - start) / n * 1e9

    async def measure() -> dict[str, float]:
        off, on = HandoffMiddleware(app, 1, None), HandoffMiddleware(app, 1, None)  # type: ignore[arg-type]
        on.requests = Interval()
        offs, ons = [], []
        for _ in range(15):
            offs.append(await per_call(off))
            ons.append(await per_call(on))
        return {"off_ns": min(offs), "on_ns": min(ons), "extra_ns": min(ons) - min(offs)}

    return asyncio.run(measure())


def _row(name: str, part: dict[str, Any]) -> list[Any]:
    trials = part["trials"]
    rolled = sum(t["outcome"] == "rolled_back" for t in trials)
    decided = summary([t["decided_ms"] for t in trials if t["decided_ms"] is not None])
    resumed = summary([t["resumed_ms"] for t in trials if t["resumed_ms"] is not None])
    answered = summary([t["bad_answered"] for t in trials if t["bad_answered"] is not None])
    conn = sum(part["client_errors"][k] for k in CONNECTION_ERRORS)
    return [name, f"{rolled}/{len(trials)}", decided["median"], decided["max"], resumed["median"],
            resumed["max"], answered["median"], answered["max"], conn]  # fmt: skip


def _print_cost(cost: dict[str, Any]) -> None:
    micro = cost["middleware"]
    print(
        f"request accounting: {cost['median_off']:.0f} req/s off, {cost['median_on']:.0f} on: "
        f"{cost['cost']:+.1%} (rounds {cost['rps']}); in-process +{micro['extra_ns']:.0f} ns per request "
        f"({micro['off_ns']:.0f} -> {micro['on_ns']:.0f} ns) = {cost['middleware_share']:.1%} of a request at "
        f"{cost['median_off']:.0f} req/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--good", type=int, default=100)
    parser.add_argument("--good-window", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--cost-rounds", type=int, default=3)
    parser.add_argument("--cost-seconds", type=float, default=10.0)
    parser.add_argument("--parts", choices=("all", "cost"), default="all")
    args = parser.parse_args()
    if args.parts == "cost":
        cost = accounting_cost(args.cost_rounds, args.cost_seconds)
        _print_cost(cost)
        path = Path(__file__).parent / "results" / "bake.json"
        data = json.loads(path.read_text())
        data["accounting"] = cost
        data["notes"].append("part 3 (accounting cost) re-measured alone with --parts cost")
        print(f"updated {write('bake', data)}")
        return 0
    notes = [precompile(), "machine: 2 shared cores, other work running; figures are one run"]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = write_faulty_app(Path(tmp) / "app")
        errors = regressions(app_dir, "errors", args.trials, args.window, args.rate)
        slow = regressions(app_dir, "slow", args.trials, args.window, args.rate)
        good = good_upgrades(app_dir, args.good, args.good_window, args.rate)
    cost = accounting_cost(args.cost_rounds, args.cost_seconds)
    headers = ["regression", "rolled back", "verdict ms", "max", "old serving ms", "max",
               "bad answered", "max", "conn errors"]  # fmt: skip
    print(table(headers, [_row("500 on 1 in 5", errors), _row("+80 ms", slow)]))
    print(
        f"\ngood version: {good['upgrades']} upgrades, bake {good['window_s']:g} s: verdicts {good['verdicts']}, "
        f"false rollbacks {good['false_rollbacks']}, client errors {good['client_errors']}"
    )
    parked = [t["parked_pss_kb"] for t in errors["trials"] + slow["trials"] if t["parked_pss_kb"]]
    parked_rss = [t["parked_rss_kb"] for t in errors["trials"] + slow["trials"] if t["parked_rss_kb"]]
    print(
        f"parked generation: PSS median {statistics.median(parked) / 1024:.1f} MiB, RSS "
        f"{statistics.median(parked_rss) / 1024:.1f} MiB"
    )
    _print_cost(cost)
    data = {
        "machine": machine(),
        "notes": notes,
        "settings": vars(args),
        "errors": errors,
        "latency": slow,
        "good": good,
        "parked_pss_kb_median": statistics.median(parked) if parked else None,
        "parked_rss_kb_median": statistics.median(parked_rss) if parked_rss else None,
        "accounting": cost,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    print(f"wrote {write('bake', data)} in {data['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
