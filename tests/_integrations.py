"""Real gunicorn / ``swapprof observe`` processes for the integration tests.

Each server starts in its own session (killed by process group in ``stop``, so gunicorn's
workers and a USR2 master go too) on a port chosen by binding 127.0.0.1:0; nothing waits by
sleeping: every wait polls with a deadline.
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
from pathlib import Path
from typing import Any

from swapprof._process import children as all_children
from swapprof._process import pid_alive
from tests._helpers import OPENER, wait_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

WSGI_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [('{"pid": %d}' % os.getpid()).encode()]
"""
ASGI_APP = """
import json, os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"pid": os.getpid()}).encode()})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> bytes | None:
    with contextlib.suppress(OSError), OPENER.open(url, timeout=timeout) as answer:
        return bytes(answer.read())
    return None


def children(pid: int) -> set[int]:
    """``pid``'s children that are not zombies."""
    return {child for child in all_children(pid) if pid_alive(child)}


class Server:
    """A server command in its own session, with a run dir, stopped and reaped by ``stop``."""

    def __init__(self, argv: list[str], tmp: Path, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.run_dir = tmp / "run"
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)).replace("{tmp}", str(tmp)) for a in argv]
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp)]),
            "SWAPPROF_RUN_DIR": str(self.run_dir),
            **(env or {}),
        }
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.tmp, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        wait_for(lambda: get(self.url), 60, "the server's first answer")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def state(self) -> dict[str, Any]:
        try:
            value = json.loads((self.run_dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def records(self) -> list[dict[str, Any]]:
        try:
            return [json.loads(line) for line in (self.run_dir / "upgrades.jsonl").read_text().splitlines()]
        except OSError:
            return []

    def wait_records(self, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        return wait_for(
            lambda: self.records() if len(self.records()) >= n else None,
            timeout,
            f"{n} upgrade records\n{self.log_text()}",
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def metrics(self) -> str:
        address = wait_for(lambda: self.state().get("debug_address"), 30, "the debug address")
        body = wait_for(lambda: get(f"http://{address}/metrics"), 30, "/metrics")
        return body.decode()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig) if sig != signal.SIGTERM else self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the rest of its group (workers, a USR2 master)
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, os.WNOHANG)
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return code

    def __exit__(self, *exc: object) -> None:
        self.stop()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text ``text``."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def n_children(pid: int, n: int) -> set[int] | None:
    """``pid``'s live children once there are exactly ``n`` of them."""
    found = children(pid)
    return found if len(found) == n else None


def n_spawned(pid: int, n: int) -> set[int] | None:
    """``pid``'s multiprocessing workers (not its resource tracker) once there are ``n``."""
    found = set()
    for child in children(pid):
        with contextlib.suppress(OSError), open(f"/proc/{child}/cmdline", "rb") as fh:
            if b"spawn_main" in fh.read():
                found.add(child)
    return found if len(found) == n else None
