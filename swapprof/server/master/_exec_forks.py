"""``ExecForks``: the N workers of an exec'd generation forked from one fresh interpreter.

With no ``--preload`` and ``--workers N`` > 1, an upgrade's worker 0 starts a one-shot zygote
(``zygote._app``): a fresh interpreter that imports the app, as an exec'd worker would. The N
workers are forked from it and it is let go once the last one is forked, so a generation costs
one interpreter's start-up and import instead of N of them side by side on the cores that also
serve (measured in docs/benchmarks.md). Each generation is still new code in a new interpreter:
nothing crosses from the old one. When the app cannot be forked safely (its import raised, or
left a thread or a shared descriptor behind; ``zygote._app``), this upgrade's workers are exec'd
as before, and after a thread or a descriptor every later one's too (said once, counted in the
record). ``--no-fork-workers`` (``SWAPPROF_FORK_WORKERS=0``) always execs every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from socket import socket
from typing import IO, Any

from swapprof._vocabulary import TRIGGER_RECOVERY
from swapprof.server._config import ServerConfig
from swapprof.server._contract import ENV_IMPORT_STAMPS, ENV_PRELOAD_APP
from swapprof.server.master._child import Generation
from swapprof.server.master._record import UpgradeRecord
from swapprof.server.master._spawn import SpawnError
from swapprof.server.master._strays import Adopter
from swapprof.server.master._zygote_client import (
    BEFORE_READY,
    Zygote,
    ZygoteError,
    fork_env,
    start_generation_forked,
)
from swapprof.server.master._zygotes import requested_phase

GIVE_UP_KINDS = frozenset({"threads", "unsafe"})
"""Refusals the app's next version is as likely to repeat: exec from then on."""


class ExecForks:
    """The master's pool when there is no zygote: ``ZygotePool``'s shape (built with the same
    arguments, most unused), so the master treats both alike."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        log: IO[bytes] | None,
        *,
        config: ServerConfig,
        listeners: Sequence[socket],
        names: Sequence[str],
        say: Callable[[str], None],
        known_pids: Callable[[], set[int]],
        **_: Any,
    ) -> None:
        self.loop, self.log, self.config, self.say = loop, log, config, say
        self.listeners, self.names = listeners, names
        self.refused: str | None = None  # why the workers are exec'd from now on
        self._known_pids = known_pids
        self._zygote: Zygote | None = None
        self._stamps = ""
        self._for: UpgradeRecord | None = None  # the upgrade the zygote imported the app for
        self._serial = 0
        self._adopter: Adopter | None = None
        self._leaving: set[asyncio.Task[None]] = set()  # zygotes let go, on their way out

    async def start(self) -> None:
        """Nothing to start before the first generation (which is forked like the others)."""

    def refill(self) -> None:
        """No spares: the app zygote lives for one upgrade."""

    def stage(self, gen: Generation, stage: str) -> None:
        """No learning either."""

    def status(self) -> dict[str, Any] | None:
        return None

    def _adopting(self) -> Adopter:
        if self._adopter is None:  # the forks re-parent to the master, which waits for them
            self._adopter = Adopter(self.loop, self._pids, self.say)
        return self._adopter

    def _pids(self) -> set[int]:
        pids = self._known_pids()
        if self._zygote is not None and self._zygote.process.alive:
            pids.add(self._zygote.process.pid)
        return pids

    async def fork(
        self, record: UpgradeRecord, new: Generation, env: dict[str, str], spawn_at: int
    ) -> int | None:
        """Start worker ``new`` of the generation ``record`` brings up as a fork of its app
        zygote (started for worker 0); return ``spawn_at``, or None when the caller must exec it."""
        if self.refused is not None or (record.id == 0 and record.trigger == TRIGGER_RECOVERY):
            return None  # refused for good, or one worker replaced alone: an exec is as fast
        if new.worker == 0:
            await self.let_go()
            requested_phase(record, spawn_at)
            if not await self._import(record, env, new.number):
                return None
        elif self._for is not record or self._zygote is None:
            return None  # the zygote refused this generation
        assert self._zygote is not None
        forked = {**fork_env(env, self.listeners, self.names), ENV_IMPORT_STAMPS: self._stamps}
        try:
            await start_generation_forked(new, self._zygote, forked, None, check=False)
        except (ZygoteError, OSError) as exc:
            self.say(f"could not fork worker {new.worker} from the app's zygote ({exc}); exec'ing it")
            await self.let_go()
            return None
        except BaseException:  # cancelled (the master stops): its forks must not stay its children
            await self.let_go()
            raise
        record.info["workers_forked"] = new.worker + 1
        if new.worker + 1 >= self.config.workers:
            await self.let_go()  # every worker forked: it has done its one job
        return spawn_at

    async def _import(self, record: UpgradeRecord, env: dict[str, str], generation: int) -> bool:
        self._serial += 1
        zygote = Zygote(self.loop, self.log, self._serial, label="app zygote", generation=generation)
        try:
            await zygote.start(
                self.config.python, {**env, ENV_PRELOAD_APP: "1"}, self.listeners, self.names,
                [], self._adopting().lifeline[0], timeout=self.config.ready_timeout, base=BEFORE_READY,
            )  # fmt: skip
        except (ZygoteError, SpawnError, OSError) as exc:
            await zygote.stop()  # Zygote.start closed it; now it is reaped
            kind = exc.kind if isinstance(exc, ZygoteError) else "spawn"
            record.info["fork_workers_refused"] = f"{kind}: {exc}"
            if kind in GIVE_UP_KINDS:
                self.refused = str(exc)
                self.say(f"the app cannot be forked safely ({exc}); every worker is exec'd from now on")
            return False
        self._zygote, self._for = zygote, record
        self._stamps = (
            f"{zygote.hello.get('import_started_ns', '')}:{zygote.hello.get('import_ended_ns', '')}"
        )
        return True

    async def let_go(self) -> None:
        """Close the app zygote's socket (it exits on that EOF) and reap it in the background."""
        zygote, self._zygote, self._for = self._zygote, None, None
        if zygote is not None:
            zygote.close()
            task = self.loop.create_task(zygote.stop())
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    async def stop(self) -> None:
        await self.let_go()
        for task in list(self._leaving):
            with contextlib.suppress(Exception):
                await task
        if self._adopter is not None:
            self._adopter.close()
            self._adopter = None
