"""Run ``swapprof serve`` as a child process: for the demo, the benchmarks and the tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from swapprof._errors import SwapprofError
from swapprof.server._control import request


class ServerProcess:
    """A master started as ``python -m swapprof serve APP --bind 127.0.0.1:0 ...``.

    Use as a context manager; on exit the master is stopped (SIGTERM, then SIGKILL) and reaped.
    """

    def __init__(
        self,
        app: str = "swapprof.server.demo:app",
        args: Sequence[str] = (),
        run_dir: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        bind: Sequence[str] = ("127.0.0.1:0",),
        output: IO[bytes] | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="swapprof-", dir="/tmp")
            run_dir = self._tmp.name
        self.run_dir = Path(run_dir)
        self.log_path = self.run_dir / "master.log"
        self.argv = [sys.executable, "-m", "swapprof", "serve", app, "--run-dir", str(self.run_dir)]
        for value in bind:
            self.argv += ["--bind", value]
        self.argv += list(args)
        self.env = dict(os.environ if env is None else env)
        self.output = output
        self.proc: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}

    def start(self, timeout: float = 60.0, pass_fds: Sequence[int] = ()) -> ServerProcess:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state_file = self.run_dir / "state.json"
        with contextlib.suppress(FileNotFoundError):
            state_file.unlink()
        log = self.output or open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, pass_fds=pass_fds
        )
        if self.output is None:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SwapprofError(
                    f"master exited with {self.proc.returncode} before it was ready:\n{self.log()}"
                )
            if (self.run_dir / "master.pid").exists() and state_file.exists():
                self.state = json.loads(state_file.read_text())
                return self
            time.sleep(0.02)
        self.kill()
        raise SwapprofError(f"master not ready within {timeout} s:\n{self.log()}")

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- facts ---------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def address(self) -> str:
        return str(self.state["addresses"][0])

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- control -------------------------------------------------------------------------------
    def ctl(self, cmd: str, timeout: float | None = 120.0, **fields: Any) -> dict[str, Any]:
        return request(self.run_dir, {"cmd": cmd, **fields}, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.ctl("status")

    def upgrade(self, timeout: float = 120.0) -> dict[str, Any]:
        """Upgrade and wait; return the upgrade record."""
        result: dict[str, Any] = self.ctl("upgrade", timeout=timeout, wait=True)["upgrade"]
        return result

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; always reaps. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
