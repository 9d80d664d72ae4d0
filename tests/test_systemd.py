"""The systemd path: sockets passed with LISTEN_FDS/LISTEN_PID, readiness over NOTIFY_SOCKET.

The test plays systemd: it binds the socket, execs the master with the socket at fd 3 and
LISTEN_PID equal to the master's own PID (a shell sets it to $$ and execs), and reads the
sd_notify datagrams the master sends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from swapprof.gate._load import LoadGenerator
from swapprof.server._control import request
from swapprof.server._notify import decode, receiver


def _messages(sock: socket.socket, until: str, timeout: float = 30.0) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    sock.setblocking(True)
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(decode(sock.recv(65536)))
        except TimeoutError:
            break
        if any(until in m for m in got):
            return got
    raise AssertionError(f"no {until} among {got}")


def test_master_uses_sockets_passed_by_systemd_and_reports_readiness(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    notify_name = f"@swapprof-test-systemd/{secrets.token_hex(4)}"
    notify = receiver(notify_name)
    run_dir = tmp_path / "run"
    serve = [sys.executable, "-m", "swapprof", "serve", "swapprof.server.demo:app", "--run-dir", str(run_dir)]
    script = f"export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web; exec {shlex.join(serve)} 3<&{listener.fileno()}"
    env = {**os.environ, "NOTIFY_SOCKET": notify_name}
    log = open(tmp_path / "master.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["bash", "-c", script], pass_fds=[listener.fileno()], env=env, stdout=log, stderr=log
    )
    listener.close()  # only the master holds it now
    try:
        first = _messages(notify, "READY")
        assert any(m.get("READY") == "1" and m.get("MAINPID") == str(proc.pid) for m in first), first
        state = request(run_dir, {"cmd": "status"})
        assert state["addresses"] == [f"127.0.0.1:{port}"]  # the passed socket, not a new bind
        gen_pid = state["generations"][0]["pid"]
        with open(f"/proc/{gen_pid}/environ", "rb") as fh:
            environ = fh.read().split(b"\0")
        assert b"LISTEN_FDNAMES=web" in environ
        assert not any(item.startswith(b"NOTIFY_SOCKET=@swapprof-test") for item in environ)
        record = request(run_dir, {"cmd": "upgrade", "wait": True}, timeout=120)["upgrade"]
        assert record["outcome"] == "success"
        during = _messages(notify, "READY")
        reloading = [m for m in during if m.get("RELOADING") == "1"]
        assert reloading and reloading[0]["MONOTONIC_USEC"].isdigit()
        assert during.index(reloading[0]) < max(i for i, m in enumerate(during) if m.get("READY") == "1")
        results = asyncio.run(LoadGenerator(f"127.0.0.1:{port}", concurrency=1, max_requests=2).run())
        assert [r.generation for r in results] == [2, 2]
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    notify.setblocking(False)
    last: list[dict[str, str]] = []
    while True:
        try:
            last.append(decode(notify.recv(65536)))
        except BlockingIOError:
            break
    notify.close()
    assert proc.returncode == 0, (tmp_path / "master.log").read_text()
    assert any(m.get("STOPPING") == "1" for m in last), last
