"""One upgrade's state machine: spawn -> import -> ready -> switch -> drain -> exit, or rollback.

``Upgrade(record, config, lend).run(new, old, env)`` brings ``new`` up; when it is READY the
old generation is told to stop accepting, drains and exits; any failure before READY rolls
back (``new`` killed and reaped, ``old`` serving on). Everything it needs of the master comes
in ``Lend``, as callables; it keeps no state beyond the upgrade it runs.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from swapprof._vocabulary import (
    DRAIN,
    EXIT,
    IMPORT,
    READY,
    REASON_APP_INVALID,
    REASON_CRASHED,
    REASON_EXITED,
    REASON_IMPORT_ERROR,
    REASON_LIFESPAN_FAILED,
    REASON_OK,
    REASON_PROBE_FAILED,
    REASON_READY_TIMEOUT,
    REASON_SPAWN_FAILED,
    ROLLBACK,
    ROLLED_BACK,
    SPAWN,
    SUCCESS,
    SWITCH,
)
from swapprof.server._config import ServerConfig
from swapprof.server._contract import (
    FAILURE_APP_INVALID,
    FAILURE_IMPORT,
    FAILURE_LIFESPAN,
    FAILURE_PROBE,
    STAGE_DRAINED,
    STAGE_IMPORTED,
    STAGE_READY,
    STAGE_STARTED,
    STAGE_STOPPED_ACCEPTING,
)
from swapprof.server.master._child import SERVING, SWITCHING, Generation
from swapprof.server.master._record import UpgradeRecord
from swapprof.server.master._spawn import SpawnError

EXIT_GRACE_S = 5.0
"""Seconds a SIGKILLed generation has to be reaped before the upgrade moves on without it."""

_FAILURES = {
    FAILURE_IMPORT: REASON_IMPORT_ERROR,
    FAILURE_APP_INVALID: REASON_APP_INVALID,
    FAILURE_PROBE: REASON_PROBE_FAILED,
    FAILURE_LIFESPAN: REASON_LIFESPAN_FAILED,
}


@dataclass(frozen=True)
class Lend:
    """What an upgrade borrows from the master."""

    spawn: Callable[[UpgradeRecord, Generation, dict[str, str], int], Awaitable[int]]
    """Start the process; return the monotonic ns its spawn phase began. Raises SpawnError/OSError."""
    adopt: Callable[[Generation], None]
    """``new`` has a process: the master tracks it from now on."""
    promote: Callable[[Generation], None]
    """``new`` is READY: it is the serving generation from now on."""
    hand_to_old: Callable[[UpgradeRecord, Generation, int], None]
    """Just before the old generation is signalled (telemetry hands it the trace context)."""
    forced_kill: Callable[[], None]
    """A generation had to be SIGKILLed (counted)."""


async def exited(gen: Generation, grace: float = EXIT_GRACE_S) -> bool:
    return await gen.wait_until(lambda: not gen.alive, time.monotonic_ns() + int(grace * 1e9))


class Upgrade:
    def __init__(self, record: UpgradeRecord, config: ServerConfig, lend: Lend) -> None:
        self.record, self.config, self.lend = record, config, lend

    async def run(self, new: Generation, old: Generation | None, env: dict[str, str]) -> None:
        """Spawn ``new``; on READY switch from ``old``, otherwise roll back. Sets the outcome."""
        record = self.record
        spawn_at = record.mark("spawn_begin")
        record.new_generation = new.number
        if old is not None:
            record.old_generation, record.old_pid = old.number, old.pid
        try:
            spawn_at = await self.lend.spawn(record, new, env, spawn_at)
        except (SpawnError, OSError) as exc:
            record.phase(ROLLBACK, spawn_at, time.monotonic_ns())
            record.mark("ended")
            record.outcome, record.reason, record.detail = ROLLED_BACK, REASON_SPAWN_FAILED, str(exc)
            return
        self.lend.adopt(new)
        record.new_pid = new.pid
        deadline = spawn_at + int(self.config.ready_timeout * 1e9)
        ok = await new.wait_until(
            lambda: STAGE_READY in new.stages or not new.alive or new.failure is not None, deadline
        )
        stages = new.stages
        if STAGE_STARTED in stages:
            record.phase(SPAWN, spawn_at, stages[STAGE_STARTED])
            if STAGE_IMPORTED in stages:
                record.phase(IMPORT, stages[STAGE_STARTED], stages[STAGE_IMPORTED])
                if STAGE_READY in stages:
                    record.phase(READY, stages[STAGE_IMPORTED], stages[STAGE_READY])
        if not ok or STAGE_READY not in stages or not new.alive:
            await self._rollback(new, timed_out=not ok)
            return
        ready_at = record.mark("new_ready", stages[STAGE_READY])
        record.info["probe_attempts"] = int(new.info.get("probe_attempts", "0") or 0)
        record.info["new_fds"] = new.open_fds()
        new.state = SERVING
        self.lend.promote(new)
        if old is not None and old.alive:
            await self._retire(old, ready_at)
        record.outcome, record.reason = SUCCESS, REASON_OK
        record.mark("ended")

    async def _rollback(self, new: Generation, timed_out: bool) -> None:
        record = self.record
        failed_at = time.monotonic_ns()
        if new.failure is not None:
            reason = _FAILURES.get(new.failure, new.failure)
            detail = new.info.get("status", "")
        elif timed_out:
            reason, detail = REASON_READY_TIMEOUT, f"not READY within {self.config.ready_timeout:g} s"
        elif new.exit_signal is not None:
            reason, detail = REASON_CRASHED, new.describe_exit()
        else:
            reason, detail = REASON_EXITED, new.describe_exit()
        if new.alive:
            new.kill()
            await exited(new, self.config.exit_grace)
        record.phase(ROLLBACK, failed_at, time.monotonic_ns())
        record.outcome, record.reason, record.detail = ROLLED_BACK, reason, detail
        record.tail = list(new.tail)
        record.mark("ended")

    async def _retire(self, old: Generation, ready_at: int) -> None:
        """Switch: tell the old generation to stop accepting, wait for its drain and exit."""
        record = self.record
        self.lend.hand_to_old(record, old, ready_at)
        old.signal(signal.SIGTERM)
        if old.state == SERVING:
            old.state = SWITCHING
        # One budget for switch + drain: an old generation whose event loop is blocked cannot
        # even stop accepting, and must not hold the upgrade longer than --drain-timeout.
        deadline = time.monotonic_ns() + int((self.config.drain_timeout + 1.0) * 1e9)
        switched = await old.wait_until(
            lambda: STAGE_STOPPED_ACCEPTING in old.stages or not old.alive, deadline
        )
        stopped = old.stages.get(STAGE_STOPPED_ACCEPTING, old.exited_at or time.monotonic_ns())
        if not switched:
            stopped = time.monotonic_ns()  # it never said so; from now on it is killed anyway
        record.mark("old_stopped_accepting", stopped)
        record.phase(SWITCH, ready_at, stopped)
        record.info["connections_at_switch"] = int(old.info.get("connections", old.connections) or 0)
        drained = switched and await old.wait_until(
            lambda: STAGE_DRAINED in old.stages or not old.alive, deadline
        )
        if not drained:
            self._kill(old)
        if not await exited(old, self.config.exit_grace):  # drained, but did not exit: kill, count
            self._kill(old)
            await exited(old)
        drained_at = old.stages.get(STAGE_DRAINED, old.exited_at or time.monotonic_ns())
        record.phase(DRAIN, stopped, drained_at)
        record.phase(EXIT, drained_at, old.exited_at or time.monotonic_ns())
        record.info["closed_idle"] = int(old.info.get("closed_idle", "0") or 0)
        record.info["old_exit"] = old.describe_exit()

    def _kill(self, gen: Generation) -> None:
        gen.kill()
        self.lend.forced_kill()
        self.record.info["forced_kill"] = True
