"""Switch latency of the reference server vs the floors and gunicorn, in one run.

    .venv/bin/python benchmarks/switch.py [--upgrades 20] [--gunicorn-cycles 4]

Measures, under the same load (keep-alive + new-connection clients, some /slow requests):
- swapprof: time_to_ready and upgrade_total as the master records them, and client errors;
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
from swapprof.gate import LoadGenerator, error_counts
from swapprof.server import ServerProcess

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


def bench_swapprof(upgrades: int) -> dict[str, Any]:
    with ServerProcess(APP) as server, Prober(server.url + "/") as prober:
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
            print(f"\r  swapprof upgrade {i + 1}/{upgrades}", end="", file=sys.stderr, flush=True)
            time.sleep(0.2)
        print(file=sys.stderr)
        results = [r for load in loads for r in load.stop()]
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
        "exec_app_imports_ms": bench_floor("import uvicorn, swapprof.server._serving, swapprof.server.demo"),
    }
    print("swapprof ...", file=sys.stderr)
    ours = bench_swapprof(args.upgrades)
    print("gunicorn ...", file=sys.stderr)
    g_hup = bench_gunicorn("HUP", args.gunicorn_cycles)
    g_usr2 = bench_gunicorn("USR2", max(1, args.gunicorn_cycles // 2))
    med = lambda d: d["median"]  # noqa: E731
    ours_first = med(ours["first_new_answer_ms"])
    rows = [
        [
            "swapprof (master's time_to_ready)",
            med(ours["time_to_ready_ms"]),
            ours["time_to_ready_ms"]["p95"],
            med(ours["upgrade_total_ms"]),
            sum(ours["client_errors"].values()),
            None,
        ],
        [
            "swapprof (client: first new answer)",
            ours_first,
            ours["first_new_answer_ms"]["p95"],
            None,
            None,
            1.0,
        ],
        [
            "floor: exec python -c pass",
            med(floors["exec_python_pass_ms"]),
            floors["exec_python_pass_ms"]["p95"],
            None,
            None,
            None,
        ],
        [
            "floor: exec app imports",
            med(floors["exec_app_imports_ms"]),
            floors["exec_app_imports_ms"]["p95"],
            None,
            None,
            None,
        ],
        [
            "gunicorn HUP (first new answer)",
            med(g_hup["first_new_answer_ms"]),
            g_hup["first_new_answer_ms"]["p95"],
            med(g_hup["upgrade_total_ms"]),
            sum(g_hup["client_errors"].values()),
            ours_first / med(g_hup["first_new_answer_ms"]) if med(g_hup["first_new_answer_ms"]) else None,
        ],
        [
            "gunicorn USR2+WINCH+QUIT (first new answer)",
            med(g_usr2["first_new_answer_ms"]),
            g_usr2["first_new_answer_ms"]["p95"],
            med(g_usr2["upgrade_total_ms"]),
            sum(g_usr2["client_errors"].values()),
            ours_first / med(g_usr2["first_new_answer_ms"]) if med(g_usr2["first_new_answer_ms"]) else None,
        ],
    ]
    print(
        table(
            ["what", "ready median ms", "ready p95 ms", "total median ms", "client errors", "ours/theirs"],
            rows,
        )
    )
    print(
        "swapprof phase medians (ms):",
        {k: round(v, 1) for k, v in ours["phases_median_ms"].items() if v is not None},
    )
    print(
        "client errors by kind: swapprof",
        ours["client_errors"],
        "| gunicorn HUP",
        g_hup["client_errors"],
        "| gunicorn USR2",
        g_usr2["client_errors"],
    )
    path = write(
        "switch",
        {
            "machine": machine(),
            "pyc": pyc,
            "floors": floors,
            "swapprof": ours,
            "gunicorn_hup": g_hup,
            "gunicorn_usr2": g_usr2,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
