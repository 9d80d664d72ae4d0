"""Real apps: swapprof serve against the server each app's user would otherwise pick, in one run.

    .venv/bin/python benchmarks/apps.py [--steady 10] [--rounds 2] [--upgrades 10]

Four hello apps (FastAPI with a pydantic model, a startproject Django site as ASGI and as WSGI,
Flask), each served by `swapprof serve` and by its peers, one serving process each: ASGI apps by
uvicorn --workers 1 (steady only: with one worker uvicorn has no supervisor and SIGHUP ends it,
checked in every run) and by gunicorn -k uvicorn.workers.UvicornWorker -w 1 (steady and upgrades);
WSGI apps by gunicorn -k gthread -w 1 --threads 10 (swapprof --threads 10), and by swapprof
with a2wsgi as its WSGI bridge (SWAPPROF_WSGI_ADAPTER=a2wsgi; skip with --no-a2wsgi); the JSON
also holds the loop <-> thread hops per request of both bridges (_hops.py, counted in-process).
`--apps django-wsgi,flask` runs those only; `--upgrades 0` measures steady throughput only.
Per server and round: a fresh server, a warm-up, `wrk -t2 -c16 -d{steady}s --latency` (steady
req/s and p99), then wrk again while `--upgrades` upgrades run one after the other (every
server: SIGHUP; swapprof: then its record in upgrades.jsonl, what `ctl upgrade --wait` waits
for; peers: then the new worker answering and the old one gone), stopped with SIGINT one second after the last (wrk's error counts and p99). Servers
run in the same order every round (A B A B) so drift hits all. Prints a table and writes
benchmarks/results/apps.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _hops
import _wrk
from _common import logs_on_failure, machine, precompile, table, write
from _hello_apps import App
from _hello_apps import write as write_apps
from _servers import Swapprof, peers_for, survives_hup, tree_cpu_s

GOAL_RATIO = 0.95
A2WSGI = "swapprof-a2wsgi"  # WSGI apps also run through a2wsgi, the bridge swapprof used before


def wait_for_quiet(limit: float, poll: float = 30.0, patience: float = 600.0) -> dict[str, Any]:
    """Wait (up to ``patience`` s) until the 1-minute load is at most ``limit``."""
    first = os.getloadavg()
    waited = 0.0
    while os.getloadavg()[0] > limit and waited < patience:
        print(f"  load {os.getloadavg()[0]:.2f} > {limit}, waiting", file=sys.stderr)
        time.sleep(poll)
        waited += poll
    return {"limit": limit, "at_first_check": first, "waited_s": waited, "at_start": os.getloadavg()}


def measure(server: Any, args: argparse.Namespace, upgrades_too: bool = True) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    url = server.start()
    during = None
    try:
        _wrk.run(url, args.warmup, args.connections, args.wrk_threads)
        root = server.root_pid
        cpu_before = tree_cpu_s(root)
        steady = _wrk.run(url, args.steady, args.connections, args.wrk_threads)
        if steady.get("requests"):  # CPU per request: what throughput means on shared, noisy cores
            used = tree_cpu_s(root) - cpu_before
            steady["server_cpu_us_per_request"] = round(used / steady["requests"] * 1e6, 2)
        if not upgrades_too or args.upgrades == 0:
            return {"load_1m_before": load_before, "steady": steady, "upgrades": None}
        during = _wrk.start(url, 60 + 15 * args.upgrades, args.connections, args.wrk_threads)
        time.sleep(1.0)
        upgrades = []
        pace = getattr(args, "pace", 0.0)  # seconds from one upgrade's start to the next one's
        for _ in range(args.upgrades):
            began = time.monotonic()
            upgrades.append(server.upgrade())
            time.sleep(max(0.0, began + pace - time.monotonic()))
        covered = during.poll() is None  # wrk still running: the whole window was under load
        time.sleep(1.0)
        under_upgrades = _wrk.finish(during, stop=True)
    finally:
        if during is not None and during.poll() is None:
            during.kill()
            during.wait()
        server.stop()
    return {
        "load_1m_before": load_before,
        "steady": steady,
        "upgrades": {
            "wrk": under_upgrades,
            "window_covered": covered,
            "succeeded": sum(u["ok"] for u in upgrades),
            "each_ms": [round(u["ms"], 1) for u in upgrades],
            "failures": [u.get("detail") for u in upgrades if not u["ok"]],
        },
    }


def bench_app(app: App, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """Every server of ``app``, fresh each round, in the same order every round (A B [C] A B [C])."""
    hup = None
    if app.interface == "asgi":  # does plain uvicorn --workers 1 restart on SIGHUP? (it does not)
        hup = survives_hup(peers_for(app, logs, f"{app.name}-hup")["uvicorn"])
    rounds: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        servers: dict[str, Any] = {"swapprof": Swapprof(app, logs / f"{app.name}-swapprof-{r}.log")}
        if app.interface == "wsgi" and not args.no_a2wsgi:  # the bridge swapprof used before its own
            servers[A2WSGI] = Swapprof(app, logs / f"{app.name}-{A2WSGI}-{r}.log", "a2wsgi")
        servers.update(peers_for(app, logs, f"{app.name}-{r}"))
        for key, server in servers.items():
            print(f"  {app.name}: round {r + 1}/{args.rounds} {key}", file=sys.stderr, flush=True)
            upgrades_too = not (key == "uvicorn" and hup and not hup["survives"])
            rounds.setdefault(key, []).append(measure(server, args, upgrades_too))
    steady_peer = "uvicorn" if app.interface == "asgi" else "gunicorn"
    upgrade_peer = "gunicorn-uvicorn" if app.interface == "asgi" else "gunicorn"
    if hup and hup["survives"]:
        upgrade_peer = "uvicorn"
    summary = {key: summarize(runs) for key, runs in rounds.items()}
    ratio = summary["swapprof"]["steady_rps"] / summary[steady_peer]["steady_rps"]
    a2wsgi = None
    if A2WSGI in summary:
        a2wsgi = {
            "ratio_to_peer": summary[A2WSGI]["steady_rps"] / summary[steady_peer]["steady_rps"],
            "bridge_over_a2wsgi": summary["swapprof"]["steady_rps"] / summary[A2WSGI]["steady_rps"],
            "round_ratios_bridge_over_a2wsgi": [
                ours["steady"]["rps"] / theirs["steady"]["rps"]
                for ours, theirs in zip(rounds["swapprof"], rounds[A2WSGI], strict=True)
            ],
        }
    return {
        "a2wsgi": a2wsgi,
        "round_ratios": [
            ours["steady"]["rps"] / peer["steady"]["rps"]
            for ours, peer in zip(rounds["swapprof"], rounds[steady_peer], strict=True)
        ],
        "steady_peer": steady_peer,
        "upgrade_peer": upgrade_peer,
        "uvicorn_workers_1_sighup": hup,
        "ratio": ratio,
        "goal_met": ratio >= GOAL_RATIO and summary["swapprof"].get("upgrade_failed", 0) == 0,
        "summary": summary,
        "rounds": rounds,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over rounds for req/s and p99; errors summed over every upgrade window."""
    out: dict[str, Any] = {
        "steady_rps": statistics.mean(run["steady"]["rps"] for run in runs),
        "steady_p99_ms": statistics.mean(run["steady"]["p99_ms"] for run in runs),
        "steady_rps_rounds": [run["steady"]["rps"] for run in runs],
    }
    cpu = [
        run["steady"]["server_cpu_us_per_request"]
        for run in runs
        if "server_cpu_us_per_request" in run["steady"]
    ]
    if cpu:  # the server's own CPU (every process of it) per request served
        out["steady_cpu_us_per_request"] = statistics.mean(cpu)
    windows = [run["upgrades"] for run in runs if run["upgrades"]]
    if not windows:
        return out
    errors: dict[str, int] = {}
    for window in windows:
        for kind, n in window["wrk"]["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    out.update(
        upgrades=sum(len(w["each_ms"]) for w in windows),
        upgrades_succeeded=sum(w["succeeded"] for w in windows),
        upgrade_ms_median=statistics.median(ms for w in windows for ms in w["each_ms"]),
        upgrade_requests=sum(w["wrk"]["requests"] for w in windows),
        upgrade_errors=errors,
        upgrade_failed=sum(errors.values()),
        upgrade_p99_ms=statistics.mean(w["wrk"]["p99_ms"] for w in windows),
        upgrade_rps=statistics.mean(w["wrk"]["rps"] for w in windows),
        window_covered=all(w["window_covered"] for w in windows),
    )
    return out


def report(results: dict[str, Any]) -> str:
    rows = []
    for name, data in results.items():
        s = data["summary"]
        ours, peer, hup = s["swapprof"], s[data["steady_peer"]], s[data["upgrade_peer"]]
        rows.append([
            name, data["steady_peer"], ours["steady_rps"], peer["steady_rps"], f"{data['ratio']:.2f}",
            ours["steady_p99_ms"], peer["steady_p99_ms"], data["upgrade_peer"],
            f"{ours.get('upgrade_failed')}/{ours.get('upgrade_requests')}",
            f"{hup.get('upgrade_failed')}/{hup.get('upgrade_requests')}",
            ours.get("upgrade_p99_ms"), hup.get("upgrade_p99_ms"), "yes" if data["goal_met"] else "NO",
        ])  # fmt: skip
    headers = ["app", "peer", "swapprof req/s", "peer req/s", "ratio", "p99 ms", "peer p99 ms",
               "upgrade peer", "upg failed", "peer upg failed", "upg p99 ms", "peer upg p99 ms",
               "goal"]  # fmt: skip
    lines = [table(headers, rows)]
    for name, data in results.items():
        if data["a2wsgi"] is not None:
            theirs, cmp = data["summary"][A2WSGI], data["a2wsgi"]
            lines.append(
                f"{name}: swapprof with a2wsgi {theirs['steady_rps']:.1f} req/s (p99 "
                f"{theirs['steady_p99_ms']:.1f} ms), ratio to {data['steady_peer']} "
                f"{cmp['ratio_to_peer']:.2f}; own bridge / a2wsgi {cmp['bridge_over_a2wsgi']:.2f} "
                f"(rounds {', '.join(f'{x:.2f}' for x in cmp['round_ratios_bridge_over_a2wsgi'])})"
            )
    for name, data in results.items():
        s = data["summary"]
        ours, hup = s["swapprof"], s[data["upgrade_peer"]]
        if "upgrades" not in ours:
            continue
        lines.append(
            f"{name}: upgrades ok swapprof {ours['upgrades_succeeded']}/{ours['upgrades']} "
            f"(median {ours['upgrade_ms_median']:.0f} ms), {data['upgrade_peer']} "
            f"{hup['upgrades_succeeded']}/{hup['upgrades']} (median {hup['upgrade_ms_median']:.0f} ms); "
            f"errors swapprof {ours['upgrade_errors']} | {data['upgrade_peer']} {hup['upgrade_errors']}"
        )
        if data["uvicorn_workers_1_sighup"] is not None:
            lines.append(
                f"{name}: gunicorn-uvicorn steady {s['gunicorn-uvicorn']['steady_rps']:.1f} req/s "
                f"(swapprof / it {ours['steady_rps'] / s['gunicorn-uvicorn']['steady_rps']:.2f}); "
                f"uvicorn --workers 1 after SIGHUP: {data['uvicorn_workers_1_sighup']}"
            )
    return "\n".join(lines)


def pyc_facts(app_root: Path) -> str:
    swapprof = precompile()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(app_root)], check=True)
    return (
        f"swapprof {swapprof}; the generated apps compiled the same way; site-packages as pip installed them"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steady", type=int, default=10, help="seconds of steady wrk per server and round")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk discarded before it")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--upgrades", type=int, default=10, help="upgrades per server and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--apps", default="fastapi,django-asgi,django-wsgi,flask")
    parser.add_argument("--no-a2wsgi", action="store_true", help="skip swapprof with a2wsgi for WSGI apps")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for the 1-min load to drop")
    parser.add_argument("--output", default="apps", help="results/NAME.json")
    args = parser.parse_args()
    if min(args.steady, args.warmup, args.rounds) < 1 or args.upgrades < 0:
        parser.error("--steady, --warmup and --rounds must be at least 1, --upgrades at least 0")
    with tempfile.TemporaryDirectory(prefix="swapprof-apps-") as name:
        root = Path(name)
        apps = [a for a in write_apps(root / "apps") if a.name in args.apps.split(",")]
        pyc = pyc_facts(root / "apps")
        logs = root / "logs"
        logs.mkdir()
        wsgi_hops = _hops.all_counts()
        load = wait_for_quiet(args.max_load)
        started = time.monotonic()
        results = {}
        with logs_on_failure(logs):
            for app in apps:
                results[app.name] = bench_app(app, args, logs)
        load["at_end"] = os.getloadavg()
    print(report(results))
    path = write(
        args.output,
        {
            "machine": machine(),
            "wrk": _wrk.version(),
            "wsgi_hops_per_request": wsgi_hops,
            "pyc": pyc,
            "load": load,
            "wall_s": round(time.monotonic() - started, 1),
            "config": {
                "wrk": f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.steady}s --latency",
                "steady_s": args.steady,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "order": "swapprof, swapprof-a2wsgi (WSGI), then the peers, in every round; each server fresh",
                "upgrades_per_round": args.upgrades,
                "connections": args.connections,
                "wrk_threads": args.wrk_threads,
                "swapprof": "swapprof serve APP --interface asgi|wsgi [--threads 10]; loop/http auto; "
                "WSGI through swapprof's bridge",
                "swapprof_a2wsgi": "the same with SWAPPROF_WSGI_ADAPTER=a2wsgi (WSGI apps)",
                "uvicorn": "uvicorn APP --workers 1 --no-access-log (swapprof logs no access either); "
                "steady only: SIGHUP ends it (see uvicorn_workers_1_sighup)",
                "gunicorn_uvicorn": "gunicorn -k uvicorn.workers.UvicornWorker -w 1 (ASGI upgrade peer)",
                "gunicorn": "gunicorn -k gthread -w 1 --threads 10",
                "swapprof_upgrade": "SIGHUP to the master, then its record in upgrades.jsonl, one after the other",
                "peer_upgrade": "SIGHUP, then wait until a new worker pid is the master's child, the old "
                "is gone and / answers 200; the next right after",
                "upgrade_window": "wrk from 1 s before the first upgrade to 1 s after the last (SIGINT)",
                "aggregation": "req/s and p99: mean of rounds; errors: summed over rounds",
            },
            "goal": f"steady req/s >= {GOAL_RATIO} x peer and 0 failed requests during upgrades",
            "apps": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
