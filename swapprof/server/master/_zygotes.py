"""``ZygotePool``: the master's zygote mode -- the zygote, its spare, the strays, the lifeline.

The pool owns every field zygote mode needs; the master hands it what it needs of the master as
callables (``say``, ``child_env``, ``known_pids``, ``busy``, ``stopping``, ``run_task``), so no
module reaches into another's private state.

- ``fork(record, new, env, spawn_at)`` starts a generation from the waiting spare or as a fresh
  fork; a stale zygote is replaced first (phase ``zygote``), a dead one in the background. It
  returns False when the caller must exec instead.
- ``refill()`` forks the next spare in the background; ``stop()`` lets everything go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from socket import socket
from typing import IO, Any

from swapprof._vocabulary import REQUESTED, ZYGOTE
from swapprof.server._contract import ENV_LIFELINE_FD, ENV_LISTEN_FDNAMES, ENV_LISTEN_FDS
from swapprof.server._libc import libc
from swapprof.server.master._child import Generation
from swapprof.server.master._record import UpgradeRecord
from swapprof.server.master._spare import Spare
from swapprof.server.master._spawn import SpawnError
from swapprof.server.master._strays import StrayReaper
from swapprof.server.master._zygote_client import Zygote, ZygoteError, start_generation_forked

PR_SET_CHILD_SUBREAPER = 36
SPARE_MIN_LIFE_S = 5.0  # a spare that died sooner is not replaced at once


def _requested(record: UpgradeRecord, spawn_at: int) -> None:
    """The upgrade's ``requested`` phase, once (its first worker's spawn ends it)."""
    if all(name != REQUESTED for name, _, _ in record.spans):
        record.phase(REQUESTED, record.requested_ns, spawn_at)


class ZygotePool:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        log: IO[bytes] | None,
        *,
        python: str,
        preload: Sequence[str],
        spare: bool,
        listeners: Sequence[socket],
        names: Sequence[str],
        say: Callable[[str], None],
        child_env: Callable[[], dict[str, str]],
        known_pids: Callable[[], set[int]],
        busy: Callable[[], bool],
        stopping: Callable[[], bool],
        run_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self.loop, self.log = loop, log
        self.python, self.preload, self.spare_enabled = python, tuple(preload), spare
        self.listeners, self.names = listeners, names
        self.say, self.child_env, self.busy, self.stopping = say, child_env, busy, stopping
        self._known_pids, self._run_task = known_pids, run_task
        self.zygote: Zygote | None = None
        self.spare: Spare | None = None  # a generation forked and warmed ahead
        self.spares: set[Spare] = set()  # every spare not yet reaped (waiting, or let go)
        self.zygotes: set[Zygote] = set()  # every zygote started and not yet stopped
        self.strays: StrayReaper | None = None
        self._lifeline: tuple[int, int] | None = None
        self._serial = 0
        self._replacing: asyncio.Task[None] | None = None
        self._refilling: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        # forks of the zygote re-parent to the master, which then waits for them like any child
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self._lifeline = os.pipe2(os.O_CLOEXEC)  # EOF in a forked generation = the master is gone
        self.strays = StrayReaper(self.loop, self.pids, self.say)
        self.strays.start()
        await self.replace()

    def pids(self) -> set[int]:
        """Every process the master knows of: its generations' and the pool's own."""
        pids = self._known_pids()
        pids.update(s.pid for s in self.spares if s.alive)
        pids.update(z.process.pid for z in self.zygotes if z.process.alive)
        return pids

    async def stop(self) -> None:
        if self._refilling is not None:
            with contextlib.suppress(Exception):
                await self._refilling  # it drops what it forked, seeing that we stop
        self.spare = None
        for spare in list(self.spares):
            await spare.stop()
        if self.zygote is not None:
            await self.zygote.stop()
            self.zygote = None
        if self.strays is not None:
            self.strays.stop()
            self.strays.grace = 0.0  # everything we own is reaped by now
            self.strays.sweep()  # what exited by now; a later orphan goes to our own parent
        if self._lifeline is not None:
            for fd in self._lifeline:
                os.close(fd)
            self._lifeline = None

    def status(self) -> dict[str, Any] | None:
        if self.zygote is None:
            return None
        waiting = self.spare is not None and self.spare.waiting
        return {
            "serial": self.zygote.serial,
            "pid": self.zygote.process.pid,
            "spare_pid": self.spare.pid if waiting and self.spare is not None else None,
        }

    # ---------------------------------------------------------------- spawning
    async def fork(
        self, record: UpgradeRecord, new: Generation, env: dict[str, str], spawn_at: int
    ) -> int | None:
        """Start ``new`` from the spare or a fork; return when its spawn phase began, or None
        when the caller must exec (no zygote, or it refused). Records ``requested`` (and
        ``zygote`` when a stale zygote had to be replaced first) on the forked path."""
        if self.zygote is None or self._lifeline is None:
            return None
        fork_env = {
            **env,
            ENV_LISTEN_FDS: str(len(self.listeners)),  # the zygote holds them at fds 3.., as we passed them
            ENV_LISTEN_FDNAMES: ":".join(self.names),
            ENV_LIFELINE_FD: str(3 + len(self.listeners) + 1),
        }
        for attempt in (1, 2):
            spare, self.spare = self.spare, None
            try:
                if await start_generation_forked(new, self.zygote, fork_env, spare):
                    record.info["spare"] = True
                    self.spares.discard(spare)  # a generation now
                record.info["spawn_mode"] = "fork"
                _requested(record, spawn_at)
                return spawn_at
            except ZygoteError as exc:
                if spare is not None:
                    spare.discard()  # forked from a zygote that now refuses: not to be used
                if exc.kind == "stale" and attempt == 1:
                    _requested(record, spawn_at)
                    self.say(f"zygote {self.zygote.serial} is stale ({exc}); replacing it")
                    await self.replace()
                    zygote_done = time.monotonic_ns()
                    record.phase(ZYGOTE, spawn_at, zygote_done)
                    spawn_at = zygote_done
                    if self.zygote is None:
                        break
                    continue
                record.info["zygote_error"] = str(exc)
                self.say(f"zygote refused to fork ({exc.kind}): {exc}; falling back to exec")
                if exc.kind == "dead":
                    self._schedule_replacement(self.zygote)
                break
            finally:
                if spare is not None and spare.waiting:
                    if self.spare is None:
                        self.spare = spare  # not used (an error before it was asked): keep it
                    else:
                        spare.discard()
        return None

    # ---------------------------------------------------------------- the zygote
    async def replace(self) -> None:
        """Start a fresh zygote; on success retire the old one. Failure leaves exec mode."""
        assert self._lifeline is not None
        self._serial += 1
        fresh = Zygote(self.loop, self.log, self._serial)
        self.zygotes.add(fresh)  # known to the stray reaper while it starts, serves and stops
        try:
            await fresh.start(self.python, self.child_env(), self.listeners, self.names, self.preload,
                              self._lifeline[0])  # fmt: skip
        except (ZygoteError, SpawnError, OSError) as exc:
            self.say(f"zygote could not start: {exc}; upgrades exec a fresh interpreter instead")
            self._drop_spare()
            self.zygotes.discard(fresh)
            old, self.zygote = self.zygote, None
            if old is not None:
                await old.stop()
                self.zygotes.discard(old)
            return
        self._drop_spare()  # forked from the zygote being replaced
        old, self.zygote = self.zygote, fresh
        self.say(f"zygote {fresh.serial} (pid {fresh.process.pid}) preloaded {', '.join(self.preload)}")
        if old is not None:
            await old.stop()
            self.zygotes.discard(old)
        if not self.busy():
            self.refill()  # (during an upgrade, its end refills)

    def _schedule_replacement(self, failed: Zygote | None) -> None:
        """Replace ``failed`` in the background, once: not if it was replaced already, or is
        being replaced (the spawn and the spare refill may both find the same zygote dead)."""
        if failed is None or self.zygote is not failed or self.stopping():
            return
        if self._replacing is not None and not self._replacing.done():
            return
        self._replacing = self._run_task(self.replace())

    # ---------------------------------------------------------------- the spare
    def refill(self) -> None:
        """Fork the next spare in the background. Not a task the master cancels: cancelled
        mid-request it would leave a spare nobody knows of; ``stop`` waits for it instead."""
        if self.zygote is None or not self.spare_enabled or self.stopping():
            return
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.create_task(self._refill())

    async def _refill(self) -> None:
        zygote = self.zygote
        if zygote is None or self.stopping() or (self.spare is not None and self.spare.waiting):
            return
        try:
            spare = await zygote.spare(self._spare_exited)
        except (ZygoteError, OSError) as exc:
            kind = exc.kind if isinstance(exc, ZygoteError) else "os"
            self.say(f"zygote {zygote.serial} could not fork a spare ({kind}): {exc}")
            if kind in ("dead", "protocol"):
                self._schedule_replacement(zygote)
            return
        self.spares.add(spare)
        if self.zygote is not zygote or self.stopping() or self.spare is not None:
            spare.discard()  # the world moved on while it was forked
            return
        self.spare = spare

    def _spare_exited(self, spare: Spare, unexpected: bool) -> None:
        self.spares.discard(spare)
        if self.spare is spare:
            self.spare = None
        if unexpected:
            lived = (time.monotonic_ns() - spare.created_at) / 1e9
            self.say(f"spare pid {spare.pid} died while waiting, after {lived:.1f} s")
            if lived >= SPARE_MIN_LIFE_S and not self.busy():
                self.refill()  # else the next upgrade's end does: no fork loop

    def _drop_spare(self) -> None:
        """Let the waiting spare go (it exits on EOF and is reaped in the background)."""
        spare, self.spare = self.spare, None
        if spare is not None:
            spare.discard()
