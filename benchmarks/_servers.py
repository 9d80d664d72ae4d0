"""The servers benchmarks/apps.py compares, behind one shape: start() -> url, upgrade(), stop().

- ``swapprof serve`` (one generation; --threads 10 for WSGI, through swapprof's WSGI bridge, or
  through a2wsgi: ``Swapprof(app, log, "a2wsgi")``); upgrade = SIGHUP to the master, as for
  the peers, then waiting for its record in ``RUN_DIR/upgrades.jsonl`` (written once the old
  generation has drained and exited: what ``swapprof ctl upgrade --wait`` waits for; a ctl
  process per upgrade would cost the serving workers its start-up CPU, which a peer's
  ``kill -HUP`` does not);
- uvicorn ``--workers 1``: steady only -- with one worker uvicorn runs without its supervisor, so
  SIGHUP has no handler and ends the process (survives_hup() shows it in every run);
- gunicorn ``-k uvicorn.workers.UvicornWorker -w 1``, the ASGI server that does restart on HUP;
- gunicorn ``-k gthread -w 1 --threads 10`` (HUP forks new workers, then retires the old).
A peer's upgrade is SIGHUP, then waiting until a new worker pid is the master's child, every
old worker pid is gone and the port answers: the same "done" as ``ctl upgrade --wait``.
Every process is started in its own session and stopped and reaped in stop().
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _hello_apps import App

from swapprof._process import children, pid_alive
from swapprof.gate._records import ServerRecords
from swapprof.server._contract import ENV_WSGI_ADAPTER
from swapprof.testing import ServerProcess

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answer(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{url} never answered 200")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every live process under it."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{current}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        todo += children(current)
    return total


def tree_cpu_with_reaped_s(pid: int) -> float:
    """``tree_cpu_s`` plus the CPU of the children ``pid`` has reaped (cutime + cstime): what a
    master's workers that exited since used, once it has waited for them."""
    tick = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return tree_cpu_s(pid) + (int(fields[13]) + int(fields[14])) / tick


def live_children(pid: int) -> set[int]:
    """``pid``'s children that are not zombies."""
    return {child for child in children(pid) if pid_alive(child)}


class Swapprof:
    """``adapter``: the WSGI bridge (``SWAPPROF_WSGI_ADAPTER``: swapprof's own, or a2wsgi)."""

    def __init__(self, app: App, log: Path, adapter: str | None = None, learn: int = 0) -> None:
        args = ["--app-dir", str(app.app_dir), "--interface", app.interface]
        if app.interface == "wsgi":
            args += ["--threads", "10"]
        env = dict(os.environ)
        env.pop(ENV_WSGI_ADAPTER, None)
        if adapter is not None:
            env[ENV_WSGI_ADAPTER] = adapter
        self.name = "swapprof" if adapter in (None, "swapprof") else f"swapprof-{adapter}"
        self.server = ServerProcess(app.target, args=args, env=env)
        self.log = log
        self.learn = learn  # --preload auto: upgrades to run, once started, until the zygote learned

    @property
    def root_pid(self) -> int:
        """The master: the workers, zygote and spares are under it."""
        assert self.server.proc is not None
        return self.server.proc.pid

    def start(self) -> str:
        self.server.start()
        wait_answer(self.server.url + "/")
        for _ in range(self.learn):
            self.upgrade()
        deadline = time.monotonic() + 60
        while self.learn and time.monotonic() < deadline:
            zygote = self.server.status().get("zygote") or {}
            if zygote.get("pid") and not (zygote.get("preload") or {}).get("learning"):
                break  # the zygote that holds what the generations imported is the one forking
            time.sleep(0.05)
        return self.server.url + "/"

    def upgrade(self, timeout: float = 120.0) -> dict[str, Any]:
        records = ServerRecords(self.server.run_dir)
        seen = len(records.read())
        t0 = time.monotonic()
        os.kill(self.root_pid, signal.SIGHUP)
        record = records.wait(seen, t0 + timeout) or {}
        ok = record.get("outcome") == "success"
        return {
            "ms": (time.monotonic() - t0) * 1000,
            "ok": ok,
            "upgrade_total_ms": record.get("upgrade_total_ms"),
            "time_to_ready_ms": record.get("time_to_ready_ms"),
            "spare": record.get("spare"),
            "detail": None if ok else json.dumps(record)[-500:] if record else "no record",
        }

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.log.write_bytes(self.server.log_path.read_bytes())
        self.server.__exit__(None, None, None)


class Peer:
    """A peer server with ``workers`` worker processes. An upgrade is done when that many new
    worker pids serve and every old one is gone; children that live on through upgrades (such
    as uvicorn's resource tracker) are allowed for."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path, workers: int = 1) -> None:
        self.name, self.argv, self.port, self.log, self.workers = name, argv, port, log, workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, start_new_session=True)
        url = f"http://127.0.0.1:{self.port}/"
        wait_answer(url)
        return url

    @property
    def root_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def upgrade(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc is not None
        old = live_children(self.proc.pid)
        helpers = max(0, len(old) - self.workers)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            now = live_children(self.proc.pid)
            if len(now - old) >= self.workers and len(now & old) <= helpers:
                wait_answer(f"http://127.0.0.1:{self.port}/", deadline - time.monotonic())
                return {
                    "ms": (time.monotonic() - t0) * 1000,
                    "ok": True,
                    "old": sorted(old),
                    "new": sorted(now),
                }
            time.sleep(0.01)
        return {"ms": (time.monotonic() - t0) * 1000, "ok": False, "detail": "old worker still there"}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # any worker the master left behind
            os.killpg(self.proc.pid, signal.SIGKILL)


def peers_for(app: App, logs: Path, tag: str) -> dict[str, Peer]:
    """The ASGI app's peers: plain uvicorn, and gunicorn with uvicorn's worker (the usual way to
    get a HUP restart for ASGI with one worker); the WSGI app's: gunicorn gthread."""
    found = {}
    if app.interface == "asgi":
        port = free_port()
        argv = [str(BIN / "uvicorn"), app.target, "--app-dir", str(app.app_dir), "--workers", "1"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        found["uvicorn"] = Peer("uvicorn", argv, port, logs / f"{tag}-uvicorn.log")
        port = free_port()
        argv = [str(BIN / "gunicorn"), "-k", "uvicorn.workers.UvicornWorker", "-w", "1"]
        argv += ["--chdir", str(app.app_dir), "-b", f"127.0.0.1:{port}", app.target]
        found["gunicorn-uvicorn"] = Peer("gunicorn-uvicorn", argv, port, logs / f"{tag}-gunicorn-uvicorn.log")
    else:
        port = free_port()
        argv = [str(BIN / "gunicorn"), "-k", "gthread", "-w", "1", "--threads", "10"]
        argv += ["--chdir", str(app.app_dir), "-b", f"127.0.0.1:{port}", app.target]
        found["gunicorn"] = Peer("gunicorn", argv, port, logs / f"{tag}-gunicorn.log")
    return found


def survives_hup(peer: Peer, wait: float = 3.0) -> dict[str, Any]:
    """Start ``peer``, SIGHUP its master once, and tell whether it still answers ``wait`` s later."""
    url = peer.start()
    try:
        assert peer.proc is not None
        before = live_children(peer.proc.pid)
        peer.proc.send_signal(signal.SIGHUP)
        time.sleep(wait)
        alive, answers = peer.proc.poll() is None, False
        if alive:
            with contextlib.suppress(RuntimeError):
                wait_answer(url, 2.0)
                answers = True
        return {"survives": answers, "exit_code": peer.proc.returncode, "workers_before": len(before)}
    finally:
        peer.stop()
