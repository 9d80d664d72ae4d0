"""The master's side of a spare: a generation the zygote forked ahead of need (see ``_zygote``).

The spare is the master's child (re-parented, like every fork of the zygote). Until an upgrade
activates it, the master forwards its output to the log as ``[spare]`` lines and reaps it if
it dies; activation sends the environment over the spare's control socket and hands the pid,
pidfd and output pipe to the new ``Generation``. Discarding closes the control socket: the
spare exits on that EOF, and is reaped when its pidfd says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Mapping
from typing import IO

from swapprof.server.master._child import OutputTee


class SpareGone(Exception):
    """The spare died (or was discarded) before it could be activated."""


class Spare:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pid: int,
        ctl: socket.socket,
        output: int,
        log: IO[bytes] | None,
        on_exit: Callable[[Spare, bool], None] | None = None,
    ) -> None:
        """``on_exit(spare, unexpected)``: called once reaped; ``unexpected``: it died waiting."""
        self.on_exit = on_exit
        self.loop = loop
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.ctl: socket.socket | None = ctl
        self.output = output
        self._output = OutputTee(loop, log, "spare", keep=0)
        self.alive = True
        self.created_at = time.monotonic_ns()
        self._exited = asyncio.Event()
        os.set_blocking(output, False)
        loop.add_reader(self.pidfd, self._on_exit)
        loop.add_reader(output, self._on_output)

    @property
    def waiting(self) -> bool:
        """Alive and not yet activated or discarded."""
        return self.alive and self.ctl is not None

    def activate(self, env: Mapping[str, str]) -> tuple[int, int, int]:
        """Give the spare its environment; return (pid, pidfd, output) for its Generation."""
        if not self.waiting or select.select([self.pidfd], [], [], 0)[0]:
            raise SpareGone(f"spare {self.pid} is gone")
        assert self.ctl is not None
        try:
            self.ctl.send(json.dumps({"env": dict(env)}).encode())
        except OSError as exc:
            raise SpareGone(f"spare {self.pid}: {exc}") from None
        self.ctl.close()
        self.ctl = None
        self.loop.remove_reader(self.pidfd)
        self.loop.remove_reader(self.output)
        self.alive = False  # it is a generation now; the Generation watches and reaps it
        return self.pid, self.pidfd, self.output

    def discard(self) -> None:
        """Let the spare go: it exits on the control socket's EOF (reaped when it does)."""
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None

    async def stop(self, timeout: float = 5.0) -> None:
        """Discard and wait until reaped; SIGKILL if it lingers."""
        self.discard()
        if not self.alive:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exited.wait(), timeout)
            return
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exited.wait(), timeout)

    def _on_output(self) -> None:
        self._output.read(self.output)

    def _on_exit(self) -> None:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                return
        unexpected = self.ctl is not None
        self.alive = False
        self.discard()
        self.loop.remove_reader(self.pidfd)
        self.loop.remove_reader(self.output)
        os.close(self.pidfd)
        os.close(self.output)
        self._exited.set()
        if self.on_exit is not None:
            self.on_exit(self, unexpected)
