"""Switch latency of the reference server vs the floors and gunicorn, in one run.

    .venv/bin/python benchmarks/switch.py [--upgrades 20] [--gunicorn-cycles 4]

Measures, under the same load (keep-alive + new-connection clients, some /slow requests):
- swapprof: time_to_ready and upgrade_total as the master records them, and client errors,
  in exec mode, zygote mode (--preload, with its warm spare) and zygote mode with --no-spare;
- floors: exec of `python -c pass`, and exec of the app's imports (uvicorn + the demo app);
- gunicorn with uvicorn's worker on the same app: HUP, and USR2 + WINCH + QUIT;
- for every server, "first new answer": signal -> the first response from a new process,
  seen by a prober that opens a fresh connection every 5 ms (the same yardstick for all).
Prints a table and writes benchmarks/results/switch.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, precompile, summary, table, write

from swapprof._process import pid_alive, wait_pid_gone
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess

APP = "swapprof.server.demo:app"


def _load(address: str) -> list[LoadGenerator]:
    return [
        LoadGenerator(address, concurrency=3, mode="keepalive", paths=[("/", 9), ("/slow?ms=200", 1)]),
        LoadGenerator(address, concurrency=2, mode="new", paths=[("/", 1)]),
    ]


class Prober:
    """Opens a new connection every 5 ms and records which pid answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[int, int]] = []  # (monotonic ns, pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import json

        while not self._stop.is_set():
            with contextlib.suppress(Exception), urllib.request.urlopen(self.url, timeout=2) as answer:
                self.seen.append((time.monotonic_ns(), json.loads(answer.read())["pid"]))
            time.sleep(0.005)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def first_new(self, since_ns: int, old_pids: set[int], timeout: float = 60.0) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, pid in list(self.seen):
                if at >= since_ns and pid not in old_pids:
                    return (at - since_ns) / 1e6
            time.sleep(0.002)
        return None

    def pids_since(self, since_ns: int) -> set[int]:
        return {pid for at, pid in self.seen if at >= since_ns}


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (MiB) of one process, from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {
        "rss_mib": fields.get("Rss", 0) / 1024,
        "pss_mib": fields.get("Pss", 0) / 1024,
        "uss_mib": uss / 1024,
    }


def bench_swapprof(upgrades: int, preload: str | None = None, spare: bool = True) -> dict[str, Any]:
    args = ["--preload", preload] if preload else []
    if preload and not spare:
        args.append("--no-spare")
    with ServerProcess(APP, args=args) as server, Prober(server.url + "/") as prober:
        loads = _load(server.address)
        for load in loads:
            load.start()
        time.sleep(1.0)
        records, first_new = [], []
        for i in range(upgrades):
            old = {g["pid"] for g in server.status()["generations"]}
            t0 = time.monotonic_ns()
            record = server.upgrade()
            records.append(record)
            first_new.append(prober.first_new(t0, old))
            mode = ("zygote" if spare else "zygote, no spare") if preload else "exec"
            print(f"\r  swapprof ({mode}) upgrade {i + 1}/{upgrades}", end="", file=sys.stderr, flush=True)
            time.sleep(0.2)
        print(file=sys.stderr)
        results = [r for load in loads for r in load.stop()]
        status = server.status()
        mem = memory(status["generations"][0]["pid"])
        spare_pid = (status.get("zygote") or {}).get("spare_pid")
        spare_mem = memory(spare_pid) if spare_pid else None
    ok = [r for r in records if r["outcome"] == "success"]
    return {
        "upgrades": len(records),
        "succeeded": len(ok),
        "time_to_ready_ms": summary([r["time_to_ready_ms"] for r in ok]),
        "upgrade_total_ms": summary([r["upgrade_total_ms"] for r in ok]),
        "first_new_answer_ms": summary([v for v in first_new if v is not None]),
        "phases_median_ms": {
            phase: summary([r["phases_ms"][phase] for r in ok if phase in r["phases_ms"]])["median"]
            for phase in ("requested", "spawn", "import", "ready", "switch", "drain", "exit")
        },
        "service_gap_ms_max": max((r["service_gap_ms"] or 0) for r in ok) if ok else None,
        "requests": len(results),
        "client_errors": error_counts(results),
        "spawn_modes": sorted({r.get("spawn_mode", "exec") for r in ok}),
        "generation_memory": mem,
        "from_spare": sum(bool(r.get("spare")) for r in ok),
        "spare_memory": spare_mem,
        "probe_attempts": summary([r.get("probe_attempts", 0) for r in ok]),
    }


def bench_floor(code: str, runs: int = 10) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return summary(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gunicorn(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = open(tmp / "gunicorn.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [
            str(gunicorn),
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "--pid",
            str(tmp / "gunicorn.pid"),
            "--graceful-timeout",
            "30",
            APP,
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _wait_answer(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{url} never answered")


def bench_gunicorn(mode: str, cycles: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="swapprof-bench-") as name:
        tmp = Path(name)
        port = _free_port()
        url = f"http://127.0.0.1:{port}/"
        master = _gunicorn(tmp, port)
        try:
            _wait_answer(url)
            with Prober(url) as prober:
                loads = _load(f"127.0.0.1:{port}")
                for load in loads:
                    load.start()
                time.sleep(1.0)
                ready, total = [], []
                for i in range(cycles):
                    t_probe = time.monotonic_ns()
                    time.sleep(0.2)
                    old_pids = prober.pids_since(t_probe)
                    t0 = time.monotonic_ns()
                    if mode == "HUP":
                        master.send_signal(signal.SIGHUP)
                        first = prober.first_new(t0, old_pids)
                        for pid in old_pids:
                            wait_pid_gone(pid, 60)
                    else:  # USR2, then WINCH + QUIT to the old master once the new one serves
                        master.send_signal(signal.SIGUSR2)
                        first = prober.first_new(t0, old_pids)
                        new_master_pid = _wait_new_master(tmp, master.pid)
                        master.send_signal(signal.SIGWINCH)
                        master.send_signal(signal.SIGQUIT)
                        master.wait(60)
                        master = _Adopted(new_master_pid)  # type: ignore[assignment]
                    ready.append(first)
                    total.append((time.monotonic_ns() - t0) / 1e6)
                    print(f"\r  gunicorn {mode} cycle {i + 1}/{cycles}", end="", file=sys.stderr, flush=True)
                print(file=sys.stderr)
                results = [r for load in loads for r in load.stop()]
        finally:
            with contextlib.suppress(Exception):
                master.send_signal(signal.SIGTERM)
                master.wait(30)
    return {
        "cycles": cycles,
        "first_new_answer_ms": summary([v for v in ready if v is not None]),
        "upgrade_total_ms": summary(total),
        "requests": len(results),
        "client_errors": error_counts(results),
    }


def _wait_new_master(tmp: Path, old: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # gunicorn writes the new master's pid to gunicorn.pid (older releases) or gunicorn.pid.2
        for path in tmp.glob("gunicorn.pid*"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                pid = int(path.read_text())
                if pid != old and pid_alive(pid):
                    return pid
        time.sleep(0.01)
    raise RuntimeError("gunicorn's new master did not write its pid file")


class _Adopted:
    """A gunicorn master started by USR2 (a grandchild of ours): signal and wait by pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> None:
        wait_pid_gone(self.pid, timeout)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)

    def poll(self) -> int | None:
        return None if pid_alive(self.pid) else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upgrades", type=int, default=20)
    parser.add_argument("--gunicorn-cycles", type=int, default=4)
    args = parser.parse_args()
    if args.upgrades < 1 or args.gunicorn_cycles < 1:
        parser.error("--upgrades and --gunicorn-cycles must be at least 1")
    import ctypes

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # subreaper: gunicorn's USR2 master stays ours to reap
    pyc = precompile()
    print("floors ...", file=sys.stderr)
    floors = {
        "exec_python_pass_ms": bench_floor("pass"),
        "exec_app_imports_ms": bench_floor(
            "import uvicorn, swapprof.server.generation._serving, swapprof.server.demo"
        ),
    }
    print("swapprof ...", file=sys.stderr)
    ours = bench_swapprof(args.upgrades)
    zygote = bench_swapprof(args.upgrades, preload="uvicorn")
    no_spare = bench_swapprof(args.upgrades, preload="uvicorn", spare=False)
    print("gunicorn ...", file=sys.stderr)
    g_hup = bench_gunicorn("HUP", args.gunicorn_cycles)
    g_usr2 = bench_gunicorn("USR2", 1)  # one cycle: a re-exec'd master does not always take a second USR2
    print(report(floors, ours, zygote, no_spare, g_hup, g_usr2))
    path = write(
        "switch",
        {
            "machine": machine(),
            "pyc": pyc,
            "floors": floors,
            "swapprof": ours,
            "swapprof_zygote": zygote,
            "swapprof_zygote_no_spare": no_spare,
            "gunicorn_hup": g_hup,
            "gunicorn_usr2": g_usr2,
        },
    )
    print(f"wrote {path}")
    return 0


def report(floors: dict[str, Any], ours: dict[str, Any], zygote: dict[str, Any], no_spare: dict[str, Any],
           g_hup: dict[str, Any], g_usr2: dict[str, Any]) -> str:  # fmt: skip
    """The table: every row's time_to_ready (master's, or client-seen first new answer) and
    its ratio to swapprof's exec mode measured in the same run."""

    def med(d: dict[str, Any]) -> float:
        return float(d["median"]) if d["median"] is not None else float("nan")

    base_ready, base_first = med(ours["time_to_ready_ms"]), med(ours["first_new_answer_ms"])
    rows = []
    for label, data, key, base in (
        ("swapprof exec: time_to_ready (master)", ours, "time_to_ready_ms", base_ready),
        ("swapprof exec: first new answer (client)", ours, "first_new_answer_ms", base_first),
        ("swapprof --preload: time_to_ready (master)", zygote, "time_to_ready_ms", base_ready),
        ("swapprof --preload: first new answer (client)", zygote, "first_new_answer_ms", base_first),
        ("swapprof --preload --no-spare: time_to_ready", no_spare, "time_to_ready_ms", base_ready),
        ("gunicorn HUP: first new answer (client)", g_hup, "first_new_answer_ms", base_first),
        ("gunicorn USR2+WINCH+QUIT: first new answer", g_usr2, "first_new_answer_ms", base_first),
    ):
        total = (
            data["upgrade_total_ms"]["median"] if key == "time_to_ready_ms" or "gunicorn" in label else None
        )
        errors = sum(data["client_errors"].values())
        rows.append([label, med(data[key]), data[key]["p95"], total, errors, f"{med(data[key]) / base:.2f}"])
    for label, key in (("floor: exec python -c pass", "exec_python_pass_ms"),
                       ("floor: exec of the app's imports", "exec_app_imports_ms")):  # fmt: skip
        rows.append(
            [label, med(floors[key]), floors[key]["p95"], None, None, f"{med(floors[key]) / base_ready:.2f}"]
        )
    lines = [table(["what", "median ms", "p95 ms", "total median ms", "client errors", "/ exec"], rows)]
    for name, data in (("exec", ours), ("zygote", zygote), ("zygote, no spare", no_spare)):
        phases = {k: round(v, 1) for k, v in data["phases_median_ms"].items() if v is not None}
        memory = {k: round(v, 1) for k, v in data["generation_memory"].items()}
        lines.append(
            f"{name}: phase medians (ms) {phases}; generation memory (MiB) {memory}; "
            f"probe attempts median {data['probe_attempts']['median']}, max {data['probe_attempts']['max']}"
        )
    spare_mem = {k: round(v, 1) for k, v in (zygote["spare_memory"] or {}).items()}
    lines.append(
        f"zygote: {zygote['from_spare']} of {zygote['succeeded']} upgrades started from the spare; "
        f"a waiting spare's memory (MiB) {spare_mem}"
    )
    lines.append(
        f"client errors by kind: exec {ours['client_errors']} | zygote {zygote['client_errors']} | "
        f"zygote, no spare {no_spare['client_errors']} | "
        f"gunicorn HUP {g_hup['client_errors']} | gunicorn USR2 {g_usr2['client_errors']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
