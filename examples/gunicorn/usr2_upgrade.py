"""Hot-upgrade a gunicorn master the documented way: USR2, then WINCH + QUIT to the old master.

    python usr2_upgrade.py PID PIDFILE [--port PORT --probe-path / --probe-field pid] [--graceful]

1. USR2 to the old master: it forks and execs a new master (which writes PIDFILE.2) that
   shares the listening sockets and boots its own workers.
2. Wait until the new generation serves: with --probe-field, until GET --probe-path on a fresh
   connection is answered by one of the new master's workers (the field must carry the
   worker's pid, as swapprof's demo app's ``pid`` does); without it, --settle seconds after
   the new master has a worker.
3. WINCH (stop the old workers gracefully; gunicorn honours it only with --daemon), then QUIT
   to the old master (a quick shutdown; --graceful sends TERM instead), and wait until it is gone.

Exits 0 when the old master is gone, 1 on a timeout. Standard library only; meant as
``swapprof bench --upgrade-cmd``; see README.md next to it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def children(pid: int) -> set[int]:
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry))
    return found


def wait_for(what: str, predicate: Callable[[], T], deadline: float) -> T:
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    sys.exit(f"usr2_upgrade: timed out waiting for {what}")


def new_master(pidfile: str, old: int) -> int:
    """The new master's pid once its pid file names a live process other than ``old``; else 0."""
    for path in (pidfile + ".2", pidfile):
        try:
            with open(path) as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if pid != old and alive(pid):
            return pid
    return 0


def answered_by(port: int, path: str, field: str) -> object:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        return json.loads(conn.getresponse().read()).get(field)
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pid", type=int, help="the serving gunicorn master")
    parser.add_argument("pidfile", help="gunicorn's --pid file")
    parser.add_argument("--port", type=int, help="where gunicorn listens (for --probe-field)")
    parser.add_argument("--probe-path", default="/")
    parser.add_argument("--probe-field", help="JSON field of the answer holding the worker's pid")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="wait after the new worker exists (no probe)"
    )
    parser.add_argument("--graceful", action="store_true", help="TERM the old master instead of QUIT")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    os.kill(args.pid, signal.SIGUSR2)
    master = wait_for("the new master's pid file", lambda: new_master(args.pidfile, args.pid), deadline)
    wait_for("a worker of the new master", lambda: children(master), deadline)
    if args.probe_field and args.port:
        wait_for(
            "an answer from a new worker",
            lambda: answered_by(args.port, args.probe_path, args.probe_field) in children(master),
            deadline,
        )
    else:
        time.sleep(args.settle)
    os.kill(args.pid, signal.SIGWINCH)
    os.kill(args.pid, signal.SIGTERM if args.graceful else signal.SIGQUIT)
    wait_for("the old master to exit", lambda: not alive(args.pid), deadline)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
