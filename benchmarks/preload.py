"""``--preload auto`` against exec mode, a hand-written ``--preload`` and the peers, per app, in one run.

    .venv/bin/python benchmarks/preload.py [--upgrades 10] [--peer-cycles 3] [--apps django,fastapi,demo]

For a ``django startproject`` hello site (ASGI), FastAPI hello and the demo app, under the same
load (3 keep-alive + 2 new-connection clients on ``/``):
- swapprof exec mode, ``--preload`` as a user would write it (django / fastapi,pydantic /
  uvicorn), and ``--preload auto`` after one learning upgrade (the zygote learned from
  generation 1's reports, the learning upgrade's, and then holds what they imported);
  time_to_ready and upgrade_total as the master records them, phases, client errors, and the
  memory of the zygote and its waiting spare;
- the peers on the same app, SIGHUPed: gunicorn ``-k uvicorn.workers.UvicornWorker -w 1`` and
  uvicorn ``--workers 2`` (its supervisor restarts workers on HUP only with more than one; its
  resource-tracker child, which lives on, is not counted): signal -> every old worker gone and
  as many new ones answering (what ``ctl upgrade --wait`` waits for).
Prints a table and writes benchmarks/results/preload.json. Default run: about 6 minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, precompile, summary, table, write
from _hello_apps import App
from _hello_apps import write as write_apps
from _servers import BIN, Peer, free_port

from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess

DEMO = App("demo", "swapprof.server.demo:app", Path.cwd(), "asgi")
DECLARED = {"django": "django", "fastapi": "fastapi,pydantic", "demo": "uvicorn"}
UVICORN_WORKERS = 2  # uvicorn restarts workers on SIGHUP only under its supervisor: --workers > 1


def _load(address: str) -> list[LoadGenerator]:
    return [
        LoadGenerator(address, concurrency=3, mode="keepalive", paths=[("/", 1)]),
        LoadGenerator(address, concurrency=2, mode="new", paths=[("/", 1)]),
    ]


def _settled(server: ServerProcess, reports: int, timeout: float = 120.0) -> dict[str, Any]:
    """Wait until the zygote holds what the generations reported (auto) and a spare waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        zygote = server.status().get("zygote")
        if zygote and zygote.get("spare_pid"):
            preload = zygote["preload"]
            if preload["mode"] != "auto" or (preload["reports"] >= reports and not preload["learning"]):
                return dict(zygote)
        time.sleep(0.05)
    raise RuntimeError(
        f"zygote not settled within {timeout} s: {server.status().get('zygote')}\n{server.log()[-3000:]}"
    )


def _mib(kb: int | None) -> float | None:
    return round(kb / 1024, 1) if kb else None


def bench_swapprof(app: App, upgrades: int, preload: str | None) -> dict[str, Any]:
    args = ["--app-dir", str(app.app_dir)] + (["--preload", preload] if preload else [])
    with ServerProcess(app.target, args=args) as server:
        loads = _load(server.address)
        for load in loads:
            load.start()
        zygote: dict[str, Any] | None = None
        learning: dict[str, Any] | None = None
        if preload:
            zygote = _settled(server, reports=1)
        if preload == "auto":  # one learning upgrade: its old generation reports what serving added
            learning = server.upgrade()
            zygote = _settled(server, reports=3)
        time.sleep(0.5)
        records = []
        for i in range(upgrades):
            records.append(server.upgrade())
            print(f"\r  {app.name} ({preload or 'exec'}) upgrade {i + 1}/{upgrades}", end="", file=sys.stderr)
            if preload:
                zygote = _settled(server, reports=0)  # the spare refilled
            time.sleep(0.2)
        print(file=sys.stderr)
        results = [r for load in loads for r in load.stop()]
        status = server.status()
    ok = [r for r in records if r["outcome"] == "success"]
    found: dict[str, Any] = {
        "preload": preload or "exec",
        "upgrades": len(records),
        "succeeded": len(ok),
        "time_to_ready_ms": summary([r["time_to_ready_ms"] for r in ok]),
        "upgrade_total_ms": summary([r["upgrade_total_ms"] for r in ok]),
        "phases_median_ms": {
            phase: summary([r["phases_ms"][phase] for r in ok if phase in r["phases_ms"]])["median"]
            for phase in ("requested", "zygote", "spawn", "import", "ready")
        },
        "spawn_modes": sorted({r.get("spawn_mode", "exec") for r in ok}),
        "from_spare": sum(bool(r.get("spare")) for r in ok),
        "requests": len(results),
        "client_errors": error_counts(results),
        "generation_rss_mib": _mib(status["generations"][0].get("rss_kb")),
        "generation_pss_mib": _mib(status["generations"][0].get("pss_kb")),
    }
    if zygote is not None:
        found["zygote"] = {
            "rss_mib": _mib(zygote.get("rss_kb")),
            "pss_mib": _mib(zygote.get("pss_kb")),
            "spare_rss_mib": _mib(zygote.get("spare_rss_kb")),
            "spare_pss_mib": _mib(zygote.get("spare_pss_kb")),
            "modules": zygote["preload"].get("modules"),
            "learned_loaded": zygote["preload"].get("learned_loaded"),
            "dropped": len(zygote["preload"].get("dropped") or {}),
        }
    if learning is not None:
        found["learning_upgrade_time_to_ready_ms"] = learning.get("time_to_ready_ms")
    return found


def _peers(app: App, logs: Path) -> dict[str, Peer]:
    peers = {}
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-k", "uvicorn.workers.UvicornWorker", "-w", "1"]
    argv += ["--chdir", str(app.app_dir), "-b", f"127.0.0.1:{port}", app.target]
    peers["gunicorn HUP"] = Peer("gunicorn", argv, port, logs / f"{app.name}-gunicorn.log")
    port = free_port()
    argv = [
        str(BIN / "uvicorn"),
        app.target,
        "--app-dir",
        str(app.app_dir),
        "--workers",
        str(UVICORN_WORKERS),
    ]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    log = logs / f"{app.name}-uvicorn.log"
    peers[f"uvicorn --workers {UVICORN_WORKERS} HUP"] = Peer("uvicorn", argv, port, log, UVICORN_WORKERS)
    return peers


def bench_peer(peer: Peer, cycles: int) -> dict[str, Any]:
    peer.start()
    try:
        loads = _load(f"127.0.0.1:{peer.port}")
        for load in loads:
            load.start()
        time.sleep(0.5)
        cycles_done = []
        for _ in range(cycles):
            cycles_done.append(peer.upgrade())
            time.sleep(0.3)
        results = [r for load in loads for r in load.stop()]
    finally:
        peer.stop()
    ok = [c["ms"] for c in cycles_done if c["ok"]]
    return {"cycles": len(cycles_done), "succeeded": len(ok), "hup_to_new_serving_ms": summary(ok),
            "requests": len(results), "client_errors": error_counts(results)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upgrades", type=int, default=10)
    parser.add_argument("--peer-cycles", type=int, default=3)
    parser.add_argument("--apps", default="django,fastapi,demo")
    args = parser.parse_args()
    if args.upgrades < 1 or args.peer_cycles < 0:
        parser.error("--upgrades must be at least 1, --peer-cycles at least 0")
    pyc = precompile()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="swapprof-preload-") as tmp:
        written = {a.name: a for a in write_apps(Path(tmp) / "apps")}
        apps = {"django": written["django-asgi"], "fastapi": written["fastapi"], "demo": DEMO}
        logs = Path(tmp) / "logs"
        logs.mkdir()
        for name in args.apps.split(","):
            app = apps[name]
            print(f"{name} ...", file=sys.stderr)
            runs = {
                "exec": bench_swapprof(app, args.upgrades, None),
                "declared": bench_swapprof(app, args.upgrades, DECLARED[name]),
                "auto": bench_swapprof(app, args.upgrades, "auto"),
            }
            if args.peer_cycles:
                for label, peer in _peers(app, logs).items():
                    runs[label] = bench_peer(peer, args.peer_cycles)
            results[name] = runs
    print(report(results))
    path = write("preload", {"machine": machine(), "pyc": pyc, "upgrades": args.upgrades, "apps": results})
    print(f"wrote {path}")
    return 0


def report(results: dict[str, Any]) -> str:
    rows = []
    notes = []
    for name, runs in results.items():
        base = runs["exec"]["time_to_ready_ms"]["median"] or float("nan")
        for label, data in runs.items():
            errors = sum(data["client_errors"].values())
            if "time_to_ready_ms" in data:
                med = data["time_to_ready_ms"]["median"]
                what = (
                    f"swapprof --preload {data['preload']}" if data["preload"] != "exec" else "swapprof exec"
                )
                rows.append([name, what, med, data["time_to_ready_ms"]["p95"], data["upgrade_total_ms"]["median"],
                             data["phases_median_ms"]["import"], errors, f"{med / base:.2f}" if med else None])  # fmt: skip
                if "zygote" in data:
                    z = data["zygote"]
                    notes.append(
                        f"{name} --preload {data['preload']}: zygote RSS {z['rss_mib']} / PSS {z['pss_mib']} MiB, "
                        f"spare RSS {z['spare_rss_mib']} / PSS {z['spare_pss_mib']} MiB; {z['modules']} modules "
                        f"({z['learned_loaded']} learned, {z['dropped']} dropped); from spare "
                        f"{data['from_spare']}/{data['succeeded']}"
                    )
            else:
                med = data["hup_to_new_serving_ms"]["median"]
                rows.append([name, label, None, None, med, None, errors, None])
    head = [
        "app",
        "server",
        "ttr median ms",
        "ttr p95 ms",
        "total median ms",
        "import ms",
        "errors",
        "/ exec",
    ]
    return "\n".join([table(head, rows), *notes])


if __name__ == "__main__":
    raise SystemExit(main())
