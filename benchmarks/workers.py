"""Every core: `swapprof serve --workers 2` against uvicorn --workers 2 and gunicorn -w 2, one run.

    .venv/bin/python benchmarks/workers.py [--steady 10] [--rounds 2] [--upgrades 20] [--ready-upgrades 10]

Part 1, per app (FastAPI hello with a pydantic model; the demo app): each server fresh, in the
same order every round (swapprof exec, `--preload` as a user would list it, `--preload auto`
once it has learned, the peers); a warm-up, `wrk -t2 -c16 -d{steady}s --latency` (steady req/s, p99),
then wrk again while `--upgrades` upgrades run one after the other, or one every `--pace` s
(the same cadence for every server, however long its upgrades take; all: SIGHUP; swapprof:
then its record in upgrades.jsonl; peers: then N new worker pids serve and the old ones are gone),
wrk's error counts and p99 during the upgrades.
Part 2 (demo app, wrk at a steady 4 connections): time_to_ready with 1 and 2 workers, exec
(with 2: one import, 2 forks), exec-each (`--no-fork-workers`, 2 workers) and `--preload`
(zygote + spare); before the load, the CPU an upgrade costs at idle; each worker's PSS/RSS
after the upgrades.
Prints tables and writes benchmarks/results/workers.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _wrk
from _common import logs_on_failure, machine, table, write
from _hello_apps import App
from _hello_apps import write as write_apps
from _servers import BIN, Peer, Swapprof, free_port, tree_cpu_with_reaped_s
from apps import measure, pyc_facts, summarize, wait_for_quiet

WORKERS = 2
PRELOAD = {"fastapi": "fastapi,pydantic", "demo": "uvicorn"}  # what a user would list
LEARN_UPGRADES = 3  # --preload auto: upgrades before measuring, then until the zygote has learned
GOAL_RATIO = 0.95
READY_GOAL = 1.5


def servers_for(app: App, logs: Path, tag: str) -> dict[str, Any]:
    ours = Swapprof(app, logs / f"{tag}-swapprof.log")
    ours.server.argv += ["--workers", str(WORKERS)]
    found: dict[str, Any] = {"swapprof": ours}
    zygote = Swapprof(app, logs / f"{tag}-swapprof-preload.log")
    zygote.server.argv += ["--workers", str(WORKERS), "--preload", PRELOAD[app.name]]
    found["swapprof-preload"] = zygote
    auto = Swapprof(app, logs / f"{tag}-swapprof-auto.log", learn=LEARN_UPGRADES)
    auto.server.argv += ["--workers", str(WORKERS), "--preload", "auto"]
    found["swapprof-auto"] = auto
    port = free_port()
    argv = [str(BIN / "uvicorn"), app.target, "--app-dir", str(app.app_dir), "--workers", str(WORKERS)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    found["uvicorn"] = Peer("uvicorn", argv, port, logs / f"{tag}-uvicorn.log", WORKERS)
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-k", "uvicorn.workers.UvicornWorker", "-w", str(WORKERS)]
    argv += ["--chdir", str(app.app_dir), "-b", f"127.0.0.1:{port}", app.target]
    found["gunicorn"] = Peer("gunicorn", argv, port, logs / f"{tag}-gunicorn.log", WORKERS)
    return found


def throughput(app: App, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for key, server in servers_for(app, logs, f"{app.name}-{r}").items():
            print(f"  {app.name}: round {r + 1}/{args.rounds} {key}", file=sys.stderr, flush=True)
            rounds.setdefault(key, []).append(measure(server, args))
    summary = {key: summarize(runs) for key, runs in rounds.items()}
    ours = summary["swapprof"]
    ratios = {peer: ours["steady_rps"] / summary[peer]["steady_rps"] for peer in ("uvicorn", "gunicorn")}
    cpu_ratios = {  # CPU per request, theirs over ours: the req/s ratio a quiet machine would show
        peer: summary[peer]["steady_cpu_us_per_request"] / ours["steady_cpu_us_per_request"]
        for peer in ("uvicorn", "gunicorn")
        if ours.get("steady_cpu_us_per_request") and summary[peer].get("steady_cpu_us_per_request")
    }
    p99_ratio = ours["upgrade_p99_ms"] / ours["steady_p99_ms"]
    zygote = summary["swapprof-preload"]
    return {
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "p99_during_over_steady": p99_ratio,
        "preload_p99_during_over_steady": zygote["upgrade_p99_ms"] / zygote["steady_p99_ms"],
        "auto_p99_during_over_steady": summary["swapprof-auto"]["upgrade_p99_ms"]
        / summary["swapprof-auto"]["steady_p99_ms"],
        "goal_met": min(ratios.values()) >= GOAL_RATIO and ours["upgrade_failed"] == 0 and p99_ratio <= 1.2,
        "summary": summary,
        "rounds": rounds,
    }


READY_MODES = (  # (mode, serve flags, worker counts)
    ("exec", [], (1, WORKERS)),  # with 2 workers: one import, 2 forks (the app zygote)
    ("exec-each", ["--no-fork-workers"], (WORKERS,)),  # each worker exec'd and importing the app
    ("zygote", ["--preload", "swapprof.server.demo"], (1, WORKERS)),
)
IDLE_UPGRADES = 4  # per case, before the load: the CPU an upgrade costs in all


def time_to_ready(demo: App, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """time_to_ready per (mode, workers), under light load; CPU per upgrade at idle; workers'
    memory after the upgrades."""
    out: dict[str, Any] = {}
    for mode, extra, counts in READY_MODES:
        for workers in counts:
            key = f"{mode}-w{workers}"
            print(f"  time_to_ready: {key}", file=sys.stderr, flush=True)
            server = Swapprof(demo, logs / f"ready-{key}.log")
            server.server.argv += ["--workers", str(workers), *extra]
            url = server.start()
            time.sleep(1.0)  # generation 1's after-READY work (telemetry set-up) done
            cpu_before = tree_cpu_with_reaped_s(server.root_pid)
            for _ in range(IDLE_UPGRADES):
                server.upgrade()
                time.sleep(1.0)  # each upgrade's after-READY work inside its own measurement
            cpu_ms = (tree_cpu_with_reaped_s(server.root_pid) - cpu_before) * 1000 / IDLE_UPGRADES
            load = _wrk.start(url, 30 + (5 + args.ready_interval) * args.ready_upgrades, 4, 1)
            try:
                records = []
                for _ in range(args.ready_upgrades):
                    time.sleep(args.ready_interval)  # upgrades a person or a deploy tool makes
                    result = server.upgrade()
                    records.append(result)
                status = server.server.status()
            finally:
                load.kill()
                load.wait()
                server.stop()
            ready = [r["time_to_ready_ms"] for r in records if r.get("time_to_ready_ms") is not None]
            gens = [g for g in status["generations"] if g["state"] == "serving"]
            out[key] = {
                "time_to_ready_ms_median": statistics.median(ready) if ready else None,
                "idle_cpu_ms_per_upgrade": round(cpu_ms, 1),
                "time_to_ready_ms": ready,
                "succeeded": sum(r["ok"] for r in records),
                "with_spare": sum(bool(r.get("spare")) for r in records),
                "pss_kb_per_worker": [g["pss_kb"] for g in gens],
                "rss_kb_per_worker": [g["rss_kb"] for g in gens],
                "zygote": status.get("zygote"),
            }
    for mode, one_key in (("exec", "exec"), ("exec-each", "exec"), ("zygote", "zygote")):
        one, two = out[f"{one_key}-w1"], out[f"{mode}-w{WORKERS}"]
        if one["time_to_ready_ms_median"] and two["time_to_ready_ms_median"]:
            out[f"{mode}_ratio"] = two["time_to_ready_ms_median"] / one["time_to_ready_ms_median"]
    return out


def report(results: dict[str, Any], ready: dict[str, Any]) -> str:
    rows = []
    for name, data in results.items():
        s = data["summary"]
        for key in ("swapprof", "swapprof-preload", "swapprof-auto", "uvicorn", "gunicorn"):
            row = s[key]
            rows.append([
                name, key, row["steady_rps"], row["steady_p99_ms"], row.get("steady_cpu_us_per_request", ""),
                f"{row['upgrade_failed']}/{row['upgrade_requests']}", row["upgrade_p99_ms"],
                f"{row['upgrades_succeeded']}/{row['upgrades']}",
                f"{data['ratios'][key]:.2f}" if key in data["ratios"] else "",
                f"{data['cpu_ratios'][key]:.2f}" if key in data["cpu_ratios"] else "",
            ])  # fmt: skip
    lines = [
        table(
            [
                "app",
                "server (2 workers)",
                "steady req/s",
                "p99 ms",
                "server CPU us/req",
                "failed during upgrades",
                "p99 ms during",
                "upgrades ok",
                "swapprof / it",
                "by CPU/req",
            ],
            rows,
        )
    ]
    for name, data in results.items():
        lines.append(
            f"{name}: swapprof p99 during upgrades / steady {data['p99_during_over_steady']:.2f} "
            f"(with --preload {data['preload_p99_during_over_steady']:.2f}, "
            f"auto {data['auto_p99_during_over_steady']:.2f}); "
            f"goal {'met' if data['goal_met'] else 'NOT met'}"
        )
    rows = [
        [
            key,
            v["time_to_ready_ms_median"],
            v.get("idle_cpu_ms_per_upgrade", ""),
            v["succeeded"],
            v.get("with_spare", ""),
            v["pss_kb_per_worker"],
            v["rss_kb_per_worker"],
        ]
        for key, v in ready.items()
        if isinstance(v, dict)
    ]
    lines.append(
        table(
            [
                "mode",
                "time_to_ready median ms",
                "CPU ms/upgrade (idle)",
                "upgrades ok",
                "with a spare",
                "PSS KiB/worker",
                "RSS KiB/worker",
            ],
            rows,
        )
    )
    lines.append(
        "time_to_ready 2 workers / 1: "
        + ", ".join(
            f"{m} {ready[f'{m}_ratio']:.2f}" for m in ("exec", "exec-each", "zygote") if f"{m}_ratio" in ready
        )
        + f" (goal <= {READY_GOAL})"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steady", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--upgrades", type=int, default=20, help="upgrades per server and round")
    parser.add_argument("--ready-upgrades", type=int, default=10, help="upgrades per time_to_ready case")
    parser.add_argument(
        "--ready-interval",
        type=float,
        default=0.5,
        help="seconds between time_to_ready upgrades (back to back, every other one finds its spare still warming)",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="seconds from one upgrade's start to the next (0: one after the other); the same for every server",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--apps", default="fastapi,demo")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--parts", default="throughput,ready", help="throughput and/or ready")
    parser.add_argument("--output", default="workers")
    args = parser.parse_args()
    if min(args.steady, args.warmup, args.rounds, args.upgrades, args.ready_upgrades) < 1:
        parser.error("--steady, --warmup, --rounds, --upgrades and --ready-upgrades must be at least 1")
    with tempfile.TemporaryDirectory(prefix="swapprof-workers-") as name:
        root = Path(name)
        written = {a.name: a for a in write_apps(root / "apps")}
        demo_dir = root / "apps" / "demo"
        demo_dir.mkdir()
        (demo_dir / "demoapp.py").write_text("from swapprof.server.demo import app  # noqa: F401\n")
        written["demo"] = App("demo", "demoapp:app", demo_dir, "asgi")
        apps = [written[n] for n in args.apps.split(",")]
        pyc = pyc_facts(root / "apps")
        logs = root / "logs"
        logs.mkdir()
        load = wait_for_quiet(args.max_load)
        started = time.monotonic()
        with logs_on_failure(logs):
            parts = args.parts.split(",")
            results = {app.name: throughput(app, args, logs) for app in apps} if "throughput" in parts else {}
            ready = time_to_ready(written["demo"], args, logs) if "ready" in parts else {}
        load["at_end"] = os.getloadavg()
    print(report(results, ready))
    path = write(
        args.output,
        {
            "machine": machine(),
            "wrk": _wrk.version(),
            "pyc": pyc,
            "load": load,
            "wall_s": round(time.monotonic() - started, 1),
            "config": {
                "workers": WORKERS,
                "wrk": f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.steady}s --latency",
                "rounds": args.rounds,
                "upgrades_per_round": args.upgrades,
                "pace_s": args.pace,
                "swapprof": f"swapprof serve APP --workers {WORKERS}; loop/http auto",
                "swapprof_preload": f"the same with --preload {PRELOAD} (zygote + spare)",
                "swapprof_auto": f"the same with --preload auto, after {LEARN_UPGRADES} upgrades and until "
                "the zygote that holds what they imported forks",
                "uvicorn": f"uvicorn APP --workers {WORKERS} --no-access-log; upgrade = SIGHUP",
                "gunicorn": f"gunicorn -k uvicorn.workers.UvicornWorker -w {WORKERS}; upgrade = SIGHUP",
                "time_to_ready": f"demo app, {args.ready_upgrades} upgrades per case, {args.ready_interval} s apart, under wrk -t1 -c4; "
                f"before them {IDLE_UPGRADES} upgrades at idle, 1 s apart, for the CPU an upgrade costs (every process under the "
                "master, the reaped ones included); exec with 2 workers = one import, 2 forks; exec-each = --no-fork-workers",
                "aggregation": "req/s and p99: mean of rounds; errors: summed over rounds",
            },
            "goal": f"steady req/s >= {GOAL_RATIO} x each peer, 0 failed requests, p99 during <= 1.2 x "
            f"steady; time_to_ready 2 workers <= {READY_GOAL} x 1",
            "apps": results,
            "time_to_ready": ready,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
