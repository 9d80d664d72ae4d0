"""Reap children nobody waits for.

In zygote mode the master is a child subreaper, so every orphan below it becomes its child:
forks of the zygote (which the master knows by pid and waits for through pidfds), but also a
process a generation's app daemonized, or a child the zygote forked for a request the master
gave up on. Nobody would wait for those, and each would stay a zombie for the master's
lifetime. Every few seconds the master lists its children (``/proc/self/task/*/children``)
and reaps those it does not know that have been unknown for a grace period (so a pid that is
still on its way to the master, in a zygote's answer, is never taken from its owner).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from swapprof._process import children
from swapprof.server._libc import libc

PR_SET_CHILD_SUBREAPER = 36

INTERVAL_S = 2.0
GRACE_S = 10.0


class StrayReaper:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        known: Callable[[], set[int]],
        say: Callable[[str], None],
        interval: float = INTERVAL_S,
        grace: float = GRACE_S,
    ) -> None:
        self.loop = loop
        self.known = known
        self.say = say
        self.interval = interval
        self.grace = grace
        self.reaped = 0
        self._unknown_since: dict[int, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        try:
            self.sweep()
        finally:
            self._timer = self.loop.call_later(self.interval, self._tick)

    def sweep(self) -> None:
        now = time.monotonic()
        current = children()
        known = self.known()
        for pid in list(self._unknown_since):
            if pid not in current or pid in known:
                del self._unknown_since[pid]
        for pid in current - known:
            since = self._unknown_since.setdefault(pid, now)
            if now - since < self.grace:
                continue
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                del self._unknown_since[pid]
                self.reaped += 1
                self.say(f"reaped pid {pid}, a child nobody waited for (wait status {status})")


class Adopter:
    """What a master that adopts forked processes (a zygote's, an app zygote's) holds: it is a
    child subreaper, so they re-parent to it; the lifeline pipe, whose read end they inherit
    (EOF = the master is gone: they have no parent-death signal tied to it); a ``StrayReaper``
    for what nobody waits for. ``known``: every pid the master waits for itself."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, known: Callable[[], set[int]], say: Callable[[str], None]
    ) -> None:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.lifeline = os.pipe2(os.O_CLOEXEC)
        self.strays = StrayReaper(loop, known, say)
        self.strays.start()

    def close(self) -> None:
        self.strays.stop()
        self.strays.grace = 0.0  # everything we own is reaped by now
        self.strays.sweep()  # what exited by now; a later orphan goes to our own parent
        for fd in self.lifeline:
            os.close(fd)
