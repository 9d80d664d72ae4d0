"""``Cohort``: one generation as the master sees it -- its N worker processes (``Generation``).

The workers of a cohort share one generation number, the same listeners and one change event
(any worker's report or exit wakes whoever waits on the cohort). Worker ``i`` sits in slot
``i``; a worker of the serving generation that died is replaced in its slot (``_restarts``).
A cohort is alive while any worker is; READY when every worker is.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from typing import IO

from swapprof.server.master._child import Generation


class Cohort:
    def __init__(
        self,
        number: int,
        size: int,
        loop: asyncio.AbstractEventLoop,
        log: IO[bytes] | None,
        on_exit: Callable[[Generation], None] | None = None,
        on_stage: Callable[[Generation, str], None] | None = None,
    ) -> None:
        self.number = number
        self.loop, self.log, self.on_exit, self.on_stage = loop, log, on_exit, on_stage
        self.changed = asyncio.Event()
        self.workers = [self.fresh(i, size) for i in range(size)]

    def fresh(self, index: int, size: int | None = None) -> Generation:
        """A new (not yet started) process for slot ``index``."""
        size = len(self.workers) if size is None else size
        label = f"gen {self.number}" if size == 1 else f"gen {self.number}.{index}"
        return Generation(
            self.number,
            self.loop,
            self.log,
            on_exit=self.on_exit,
            label=label,
            worker=index,
            changed=self.changed,
            on_stage=self.on_stage,
        )

    def __iter__(self) -> Iterator[Generation]:
        return iter(self.workers)

    def __len__(self) -> int:
        return len(self.workers)

    def holds(self, gen: Generation) -> bool:
        """``gen`` is the process in its slot now (not one it replaced)."""
        return 0 <= gen.worker < len(self.workers) and self.workers[gen.worker] is gen

    @property
    def alive(self) -> bool:
        return any(w.alive for w in self.workers)

    @property
    def started(self) -> list[Generation]:
        return [w for w in self.workers if w.pid]

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid]

    def latest(self, stage: str) -> int | None:
        """When the last worker reached ``stage`` (None if one has not)."""
        stamps = [w.stages.get(stage) for w in self.workers]
        return None if any(s is None for s in stamps) else max(s for s in stamps if s is not None)

    async def wait_until(self, predicate: Callable[[], bool], deadline_ns: int) -> bool:
        """Wait until ``predicate()`` holds or CLOCK_MONOTONIC passes ``deadline_ns``."""
        while not predicate():
            remaining = (deadline_ns - time.monotonic_ns()) / 1e9
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def gone(self, deadline_ns: int) -> bool:
        return await self.wait_until(lambda: not self.alive, deadline_ns)

    def signal(self, signum: int) -> None:
        for worker in self.workers:
            worker.signal(signum)

    def kill(self) -> None:
        for worker in self.workers:
            if worker.alive:
                worker.kill()

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)
