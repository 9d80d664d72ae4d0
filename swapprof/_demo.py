"""``swapprof demo`` (``make demo``): start the reference server, drive load, upgrade it live.

``swapprof.cli`` calls ``add_parser`` and ``run`` (exit 0 when every upgrade succeeded with no
failed request, else 1); ``run_demo`` is the same for code and tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from swapprof._argtypes import Subparsers
from swapprof._argtypes import count as _count
from swapprof._vocabulary import DISPLAY_ORDER
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.server._cli import workers_arg
from swapprof.testing import ServerProcess


def _line(record: dict[str, Any]) -> str:
    phases = record["phases_ms"]
    cells = " ".join(f"{name} {phases[name]:6.1f}" for name in DISPLAY_ORDER if name in phases)
    return (
        f"  upgrade {record['id']}: gen {record['old_generation']} -> {record['new_generation']}  "
        f"{record['outcome']:<8} ready in {record['time_to_ready_ms'] or 0:6.1f} ms  [{cells}] ms"
    )


def _waterfall(run_dir: Any, count: int) -> str:
    """The last ``count`` upgrades as waterfalls, once their spans have reached the span file."""
    from swapprof.telemetry._report import load_upgrades, render_text

    deadline = time.monotonic() + 10
    upgrades = []
    while time.monotonic() < deadline:
        try:
            upgrades = load_upgrades(run_dir)
        except Exception:
            upgrades = []
        if len(upgrades) >= count and all(len(u.phases) >= 7 for u in upgrades[-count:]):
            break
        time.sleep(0.1)
    text = render_text(upgrades[-count:], width=32)
    return "\n".join(f"  {line}" if line else "" for line in text.splitlines())


def _drive(server: ServerProcess, upgrades: int, say: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """Load ``server``, upgrade it ``upgrades`` times (a line each); return records and results."""
    loads = [
        LoadGenerator(server.address, concurrency=4, mode="keepalive", paths=[("/", 9), ("/slow?ms=150", 1)]),
        LoadGenerator(server.address, concurrency=2, mode="new", paths=[("/", 1)]),
    ]
    for load in loads:
        load.start()
    time.sleep(1.0)  # let the load reach steady state before the first upgrade
    say(f"  load running (4 keep-alive + 2 new-connection clients); performing {upgrades} hot upgrades")
    records = []
    for _ in range(upgrades):
        record = server.upgrade()
        records.append(record)
        say(_line(record))
        time.sleep(0.5)
    return records, [r for load in loads for r in load.stop()]


def _outcome(records: list[dict[str, Any]], results: list[Any], say: Any) -> bool:
    errors = error_counts(results)
    failed = sum(errors.values())
    say(f"  requests: {len(results)}, failed: {failed} {errors if failed else ''}".rstrip())
    retried = sum(r.retried for r in results)
    if retried:
        say(f"  re-sent once on a new connection after the server closed an idle keep-alive one: {retried}")
    return failed == 0 and all(r["outcome"] == "success" for r in records)


def _median_ready(records: list[dict[str, Any]]) -> float:
    return float(statistics.median(r["time_to_ready_ms"] or 0.0 for r in records))


def run_demo(
    upgrades: int = 3, run_dir: str | None = None, out: Any = None, zygote: bool = True, workers: int = 1
) -> int:
    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say("swapprof demo: starting the reference server (swapprof.server.demo:app) on a free port")
    with ServerProcess(run_dir=run_dir, args=["--workers", str(workers)]) as server:
        say(f"  master pid {server.pid} listening on {server.url}, run dir {server.run_dir}")
        records, results = _drive(server, upgrades, say)
        ok = _outcome(records, results, say)
        generations = sorted({r.generation for r in results if r.generation is not None})
        status = server.status()
        same = status["master_pid"] == server.pid
        say(f"  generations that answered: {generations}; master pid unchanged: {same}")
        for g in status["generations"]:
            say(
                f"  worker {g['worker']}: pid {g['pid']} {g['state']}, RSS {g['rss_kb']} KiB, PSS {g['pss_kb']} KiB"
            )
        say(f"  metrics: http://{status['debug_address']}/metrics   traces: {server.run_dir / 'spans.jsonl'}")
        say(_waterfall(server.run_dir, len(records)))
    if zygote:
        say("swapprof demo: the same with --preload uvicorn (a zygote, and a spare forked ahead)")
        with ServerProcess(args=["--preload", "uvicorn", "--workers", str(workers)]) as server:
            fast, results = _drive(server, upgrades, say)
            ok = _outcome(fast, results, say) and ok
        exec_ms, fork_ms = _median_ready(records), _median_ready(fast)
        say(
            f"  time_to_ready median: exec {exec_ms:.1f} ms, zygote {fork_ms:.1f} ms "
            f"({fork_ms / exec_ms:.2f} of exec); {sum(bool(r.get('spare')) for r in fast)} of {len(fast)} "
            "upgrades started from the spare"
        )
    say("swapprof demo: " + ("all upgrades succeeded with zero failed requests" if ok else "FAILED"))
    return 0 if ok else 1


def add_parser(subparsers: Subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="start the server, drive load, hot-upgrade it, print the report"
    )
    demo.add_argument(
        "--upgrades", type=_count, default=3, metavar="N", help="number of upgrades (default 3)"
    )
    demo.add_argument("--run-dir", metavar="DIR", help="keep the run files here (default: a temporary dir)")
    demo.add_argument(
        "--workers",
        type=workers_arg,
        default=1,
        metavar="N|auto",
        help="worker processes per generation (default 1; auto = one per CPU)",
    )
    demo.add_argument(
        "--no-zygote", dest="zygote", action="store_false", help="skip the second run with --preload"
    )


def run(args: argparse.Namespace) -> int:
    return run_demo(upgrades=args.upgrades, run_dir=args.run_dir, zygote=args.zygote, workers=args.workers)
