"""Any server as a bench target: ``--cmd 'gunicorn ... -b 127.0.0.1:{port}'`` plus
``--upgrade-cmd 'kill -HUP {pid}'`` and a generation probe, measured from the client side.

Placeholders: ``{port}`` (a free loopback port), ``{pid}`` (the server's main pid: the one we
started, or what ``--pid-file`` names once the server changes it, as gunicorn's USR2 does),
``{tmpdir}`` (a private directory for pid files and the log) and ``{python}`` (this
interpreter). ``--cmd`` is split like a shell word list and executed directly (so ``{pid}`` is
the server itself, not a shell); the upgrade command runs under ``/bin/sh -c``.

The probe tells generations apart by the answer's body (or one JSON field): it must change
with each generation and stay the same within one. A worker pid does that only with one worker
(gunicorn ``-w 1``); with more, answer a per-generation value (a start time, a build id).

How an upgrade is measured from the client side: ``_client_upgrade.py``; a server run with
``swapprof.integrations`` adds its own record's phases (``_records.py``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swapprof._errors import ConfigError, SwapprofError
from swapprof._process import pid_alive
from swapprof._vocabulary import SUCCESS
from swapprof.gate import _client_upgrade as client_upgrade
from swapprof.gate._machine import descendants, fds_and_rss
from swapprof.gate._probe import Probe
from swapprof.gate._procgroup import stop_group
from swapprof.gate._records import ServerRecords, merge, run_dir_of


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CommandTarget:
    def __init__(
        self,
        cmd: str,
        upgrade_cmd: str,
        *,
        probe_path: str = "/",
        probe_field: str | None = None,
        pid_file: str | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        if "{port}" not in cmd:
            raise ConfigError("--cmd must contain {port}: the server has to listen where the bench says")
        if not probe_path.startswith("/"):
            raise ConfigError(f"--probe-path {probe_path!r} must start with '/'")
        self.cmd, self.upgrade_cmd, self.pid_file_arg = cmd, upgrade_cmd, pid_file
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.probe = Probe("127.0.0.1", self.port, probe_path, probe_field)
        self._tmp = tempfile.TemporaryDirectory(prefix="swapprof-bench-")
        self.log_path = Path(self._tmp.name) / "target.log"
        self.records = ServerRecords(run_dir_of(self.env, Path(self._tmp.name) / "run"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._generation = 1

    def _fill(self, text: str, pid: int | None = None) -> str:
        text = text.replace("{port}", str(self.port)).replace("{tmpdir}", self._tmp.name)
        text = text.replace("{python}", sys.executable)
        return text if pid is None else text.replace("{pid}", str(pid))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "command",
            "cmd": self.cmd,
            "upgrade_cmd": self.upgrade_cmd,
            "probe_path": self.probe.path,
            "probe_field": self.probe.field,
            "pid_file": self.pid_file_arg,
        }

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def start(self) -> None:
        argv = shlex.split(self._fill(self.cmd))
        with open(self.log_path, "ab") as log:
            try:
                self.proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
                )
            except OSError as exc:
                raise ConfigError(f"--cmd {argv[0]!r} cannot be started: {exc}") from None
        proc = self.proc
        found = self.probe.wait(
            time.monotonic() + self.ready_timeout, give_up=lambda: proc.poll() is not None
        )
        if found is None:
            tail = self.log_tail()
            self.stop()
            why = f"exited with {proc.returncode}" if proc.returncode is not None else "never answered"
            raise SwapprofError(
                f"the server {why} (GET {self.probe.path} on {self.address}, "
                f"--ready-timeout {self.ready_timeout:g} s); its output:\n{tail}"
            )

    def main_pid(self, wait: float = 10.0) -> int:
        """The server's main pid: from --pid-file once it names a live process, else ours."""
        assert self.proc is not None
        if not self.pid_file_arg:
            return self.proc.pid
        path, deadline = Path(self._fill(self.pid_file_arg)), time.monotonic() + wait
        while True:
            with contextlib.suppress(OSError, ValueError):
                pid = int(path.read_text().strip())
                if pid_alive(pid):
                    return pid
            if time.monotonic() >= deadline:
                raise SwapprofError(f"--pid-file {path} names no live process")
            time.sleep(0.01)

    def upgrade(self) -> dict[str, Any]:
        assert self.proc is not None
        self.proc.poll()  # reap our child if an upgrade replaced it
        old = self.probe.identity()
        if old is None:
            return {"source": "client", "outcome": "failed", "reason": "not_serving", "phases_ms": {}}
        pid = self.main_pid()
        argv = ["/bin/sh", "-c", self._fill(self.upgrade_cmd, pid)]
        before = len(self.records.read())
        done = client_upgrade.run(self.probe, argv, old, self.ready_timeout, self.env, self.log_path)
        entry = done.entry(self._generation, pid, self.log_tail())
        if done.identity is not None:
            self._generation += 1
        if self.records.present():  # the integration ends its record once the old workers are gone
            wait = self.ready_timeout if entry["outcome"] == SUCCESS else 0.0
            record = self.records.wait(before, time.monotonic() + wait)
            if record is not None:
                entry = merge(entry, record)
        return entry

    def generation(self) -> dict[str, Any]:
        try:
            pids = descendants(self.main_pid(wait=2.0))
        except SwapprofError:
            pids = []
        return {"generation": self._generation, **fds_and_rss(pids)}

    def stop(self) -> None:
        extra = []
        with contextlib.suppress(SwapprofError, AssertionError):
            extra = [self.main_pid(wait=0.0)]
        if self.proc is not None:
            stop_group(self.proc, extra, signal.SIGTERM)
        self._tmp.cleanup()
