"""``WorkerRestarts``: what happens when processes of the serving generation die on their own.

A worker that died while others of its generation serve on is replaced alone. When the last
one is gone, a ``recovery`` upgrade starts a whole new generation (``recover()``), spaced by
a growing back-off while recoveries keep failing (``upgrade_ended`` counts them).

A replaced worker keeps its generation number and index; no upgrade runs for it.
Same generation number, same worker index, no upgrade: the replacement runs the code the
generation was started with only in the sense that it is imported afresh (as any worker). The
first replacement of a worker that had lived ``STABLE_S`` starts at once; while replacements
keep dying sooner, each waits ``BACKOFF_FIRST_S`` doubling up to ``BACKOFF_MAX_S``. While an
upgrade runs nothing is replaced: the master calls ``fill`` when it has ended (a failed
upgrade leaves the old generation serving, with its slot still empty).

The master hands in what it knows as callables: ``spawn(gen)`` starts a process (exec or a
fork of the zygote), ``serving()`` the serving cohort, ``busy()`` an upgrade runs,
``stopping()``, ``counted()`` one more restart, ``recover()`` a recovery upgrade, ``idle()``
no upgrade running or pending, ``say``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from swapprof._vocabulary import TRIGGER_RECOVERY
from swapprof.server._contract import STAGE_READY
from swapprof.server.master._child import SERVING, Generation
from swapprof.server.master._cohort import Cohort
from swapprof.server.master._spawn import SpawnError

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 10.0
"""A worker that lived this long resets its slot's back-off."""
RECOVERY_BACKOFF_S = 1.0


class WorkerRestarts:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        spawn: Callable[[Generation], Awaitable[None]],
        serving: Callable[[], Cohort | None],
        busy: Callable[[], bool],
        stopping: Callable[[], bool],
        counted: Callable[[], None],
        recover: Callable[[], object],
        idle: Callable[[], bool],
        ready_timeout: float,
        say: Callable[[str], None],
        run_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self.loop = loop
        self._spawn, self._serving, self._busy, self._stopping = spawn, serving, busy, stopping
        self._counted, self.ready_timeout, self.say, self._run_task = counted, ready_timeout, say, run_task
        self._recover, self._idle = recover, idle
        self.total = 0
        self._recovery_failures = 0
        self._failures: dict[int, int] = {}
        self._pending: dict[int, asyncio.TimerHandle] = {}

    # ---------------------------------------------------------------- events
    def exited(self, gen: Generation) -> None:
        """A worker ended (its ``on_exit``). If it served and died on its own: replace it alone,
        or, when it was its generation's last, recover. During an upgrade: at its end."""
        cohort = self._serving()
        if cohort is None or not cohort.holds(gen) or self._busy() or self._stopping():
            return
        if cohort.alive:
            self.died(cohort, gen)
            return
        self.say(
            f"generation {gen.number} (pid {gen.pid}) {gen.describe_exit()} while serving; starting a replacement"
        )
        self._schedule_recovery()

    def upgrade_ended(self, trigger: str, success: bool) -> None:
        if trigger == TRIGGER_RECOVERY:
            self._recovery_failures = 0 if success else self._recovery_failures + 1

    def settle(self) -> None:
        """After an upgrade: recover a serving generation that is gone, fill one that lost workers."""
        if self._stopping():
            return
        cohort = self._serving()
        if cohort is None or not cohort.alive:
            self._schedule_recovery()
        else:
            self.fill(cohort)

    def _schedule_recovery(self) -> None:
        """Start a recovery upgrade, spaced by a growing backoff while recoveries keep failing."""
        delay = min(RECOVERY_BACKOFF_S * (2**self._recovery_failures) - RECOVERY_BACKOFF_S, BACKOFF_MAX_S)
        self.loop.call_later(delay, self._recover_now)

    def _recover_now(self) -> None:
        if self._stopping():
            return
        cohort = self._serving()
        if cohort is not None and cohort.alive:
            if not self._busy():
                self.fill(cohort)  # a replacement worker came up meanwhile
            return
        if self._idle():
            self._recover()

    # ---------------------------------------------------------------- one worker
    def delay(self, index: int) -> float:
        failures = self._failures.get(index, 0)
        return 0.0 if failures == 0 else min(BACKOFF_FIRST_S * 2 ** (failures - 1), BACKOFF_MAX_S)

    def died(self, cohort: Cohort, gen: Generation) -> None:
        """``gen``, in its slot of the serving ``cohort``, exited on its own: schedule its replacement."""
        lived = ((gen.exited_at or time.monotonic_ns()) - gen.spawned_at) / 1e9 if gen.spawned_at else 0.0
        ready = STAGE_READY in gen.stages
        self._failures[gen.worker] = (
            0 if ready and lived >= STABLE_S else self._failures.get(gen.worker, 0) + 1
        )
        self.say(
            f"worker {gen.worker} of generation {gen.number} (pid {gen.pid}) {gen.describe_exit()} "
            f"after {lived:.1f} s; replacing it in {self.delay(gen.worker):g} s"
        )
        self._schedule(cohort, gen.worker)

    def fill(self, cohort: Cohort | None) -> None:
        """Replace every dead worker of ``cohort`` (after an upgrade that left it serving)."""
        if cohort is None:
            return
        for gen in cohort:
            if not gen.alive:
                self._schedule(cohort, gen.worker)

    def _schedule(self, cohort: Cohort, index: int) -> None:
        if self._stopping() or index in self._pending:
            return
        self._pending[index] = self.loop.call_later(self.delay(index), self._fire, cohort, index)

    def _fire(self, cohort: Cohort, index: int) -> None:
        self._pending.pop(index, None)
        if self._stopping() or self._busy() or self._serving() is not cohort:
            return  # an upgrade's end calls fill; a cohort no longer serving needs nothing
        if cohort.workers[index].alive or not cohort.alive:
            return  # replaced already, or the whole generation is gone (crash recovery)
        self._run_task(self._replace(cohort, index))

    async def _replace(self, cohort: Cohort, index: int) -> None:
        gen = cohort.fresh(index)
        cohort.workers[index] = gen
        self.total += 1
        self._counted()
        try:
            await self._spawn(gen)
        except (SpawnError, OSError) as exc:
            self._failures[index] = self._failures.get(index, 0) + 1
            self.say(f"worker {index} of generation {cohort.number} could not be started: {exc}")
            self._schedule(cohort, index)
            return
        deadline = gen.spawned_at + int(self.ready_timeout * 1e9)
        ok = await gen.wait_until(lambda: STAGE_READY in gen.stages or not gen.alive, deadline)
        if ok and gen.alive:
            gen.state = SERVING
            self.say(f"worker {index} of generation {cohort.number} replaced: pid {gen.pid} serving")
        elif gen.alive:
            self.say(f"replacement worker {index} (pid {gen.pid}) not READY in {self.ready_timeout:g} s")
            gen.kill()  # its exit schedules the next attempt, backed off

    def stop(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
