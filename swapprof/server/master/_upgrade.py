"""One upgrade's state machine: spawn -> import -> ready -> switch -> drain -> exit, or rollback.

``Upgrade(record, config, lend).run(new, old, env)`` brings up the N workers of ``new`` (all
started back to back, none waiting for another); when ALL are READY the old generation's
workers are told together to stop accepting, drain and exit, within one shared budget. Any
worker failing before READY rolls the whole generation back (every new worker killed and
reaped, ``old`` serving on; the record names the failing worker). Everything it needs of the
master comes in ``Lend``, as callables; it keeps no state beyond the upgrade it runs.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from swapprof._vocabulary import (
    BAKE,
    BAKE_FAIL,
    BAKE_PASS,
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
    SIGNAL_PARK,
    STAGE_DRAINED,
    STAGE_IMPORTED,
    STAGE_PARKED,
    STAGE_READY,
    STAGE_RESUMED,
    STAGE_STARTED,
    STAGE_STOPPED_ACCEPTING,
)
from swapprof.server.master._bake import bake, resume
from swapprof.server.master._child import SERVING, SWITCHING, Generation
from swapprof.server.master._cohort import Cohort
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
    """Start one worker; return the monotonic ns its spawn phase began. Raises SpawnError/OSError."""
    adopt: Callable[[Cohort], None]
    """``new`` has a process: the master tracks it from now on."""
    promote: Callable[[Cohort], None]
    """``new`` is READY: it is the serving generation from now on."""
    hand_to_old: Callable[[UpgradeRecord, Generation, int], None]
    """Just before an old worker is signalled (telemetry hands it the trace context)."""
    forced_kill: Callable[[], None]
    """A generation had to be SIGKILLed (counted)."""


async def exited(gens: Iterable[Generation], grace: float = EXIT_GRACE_S) -> bool:
    gens = list(gens)
    if not gens:
        return True
    return await gens[0].wait_until(
        lambda: not any(g.alive for g in gens), time.monotonic_ns() + int(grace * 1e9)
    )


def _settled(new: Cohort) -> bool:
    """Every worker READY, or one failed or gone (then the whole generation rolls back)."""
    if any(not w.alive or w.failure is not None for w in new):
        return True
    return all(STAGE_READY in w.stages for w in new)


class Upgrade:
    def __init__(self, record: UpgradeRecord, config: ServerConfig, lend: Lend) -> None:
        self.record, self.config, self.lend = record, config, lend

    async def run(self, new: Cohort, old: Cohort | None, env: dict[str, str]) -> None:
        """Spawn ``new``; when all its workers are READY switch from ``old``, else roll back."""
        record = self.record
        spawn_at = record.mark("spawn_begin")
        record.new_generation = new.number
        if old is not None:
            record.old_generation, record.old_pid = old.number, old.workers[0].pid
            record.info["old_pids"] = [w.pid for w in old if w.alive]
        for worker in new:
            try:
                begun = await self.lend.spawn(record, worker, env, spawn_at)
            except (SpawnError, OSError) as exc:
                started = new.started
                if started:
                    self.lend.adopt(new)
                    new.kill()
                    await exited(started)
                record.phase(ROLLBACK, spawn_at, time.monotonic_ns())
                record.mark("ended")
                record.outcome, record.reason, record.detail = ROLLED_BACK, REASON_SPAWN_FAILED, str(exc)
                record.info["failed_worker"] = worker.worker
                return
            spawn_at = begun if worker.worker == 0 else spawn_at  # after a zygote replacement, if any
            self.lend.adopt(new)
        record.new_pid = new.workers[0].pid
        record.info["new_pids"] = new.pids
        deadline = spawn_at + int(self.config.ready_timeout * 1e9)
        ok = await new.wait_until(lambda: _settled(new), deadline)
        self._new_phases(new, spawn_at)
        if not ok or any(STAGE_READY not in w.stages or not w.alive for w in new):
            await self._rollback(new, timed_out=not ok)
            return
        ready_at = record.mark("new_ready", new.latest(STAGE_READY))
        record.info["probe_attempts"] = max(int(w.info.get("probe_attempts", "0") or 0) for w in new)
        record.info["new_fds"] = new.workers[0].open_fds()
        for worker in new:
            worker.state = SERVING
        self.lend.promote(new)
        if old is not None and old.alive and await self._retire(old, ready_at, new):
            return  # the bake failed: rolled back to the parked old generation
        record.outcome, record.reason = SUCCESS, REASON_OK
        record.mark("ended")

    def _new_phases(self, new: Cohort, spawn_at: int) -> None:
        """Each new worker's import and ready; the generation's spawn, import and ready, each
        ending when the last worker got there."""
        record = self.record
        for worker in new:
            stages = worker.stages
            if STAGE_STARTED in stages and STAGE_IMPORTED in stages:
                record.worker_phase(IMPORT, worker.worker, stages[STAGE_STARTED], stages[STAGE_IMPORTED])
                if STAGE_READY in stages:
                    record.worker_phase(READY, worker.worker, stages[STAGE_IMPORTED], stages[STAGE_READY])
        started = new.latest(STAGE_STARTED)
        if started is not None:
            record.phase(SPAWN, spawn_at, started)
            imported = new.latest(STAGE_IMPORTED)
            if imported is not None:
                record.phase(IMPORT, started, imported)
                ready = new.latest(STAGE_READY)
                if ready is not None:
                    record.phase(READY, imported, ready)

    async def _rollback(self, new: Cohort, timed_out: bool) -> None:
        record = self.record
        failed_at = time.monotonic_ns()
        failing = (
            next((w for w in new if w.failure is not None), None)
            or next((w for w in new if not w.alive), None)
            or next((w for w in new if STAGE_READY not in w.stages), new.workers[0])
        )
        if failing.failure is not None:
            reason = _FAILURES.get(failing.failure, failing.failure)
            detail = failing.info.get("status", "")
        elif timed_out:
            reason, detail = REASON_READY_TIMEOUT, f"not READY within {self.config.ready_timeout:g} s"
        elif failing.exit_signal is not None:
            reason, detail = REASON_CRASHED, failing.describe_exit()
        else:
            reason, detail = REASON_EXITED, failing.describe_exit()
        if new.alive:
            await self._end_new(new)
        record.phase(ROLLBACK, failed_at, time.monotonic_ns())
        record.outcome, record.reason, record.detail = ROLLED_BACK, reason, detail
        record.info["failed_worker"] = failing.worker
        record.tail = list(failing.tail)
        record.mark("ended")

    async def _end_new(self, new: Cohort) -> None:
        """End a rolled-back generation without losing what it accepted: SIGTERM, so a READY
        worker drains like an old one and one still proving itself (or the failing one) serves
        what its probe's claims took; SIGKILL whoever is still there at the deadline (a worker
        that reported READY or its failure gets --drain-timeout, one that said neither, stuck in
        its import or lifespan, --exit-grace)."""
        alive = [w for w in new if w.alive]
        for worker in alive:
            worker.signal(signal.SIGTERM)
        draining = any(STAGE_READY in w.stages or w.failure is not None for w in alive)
        budget = (self.config.drain_timeout if draining else 0.0) + self.config.exit_grace
        deadline = time.monotonic_ns() + int(budget * 1e9)
        if not await new.wait_until(lambda: not any(w.alive for w in alive), deadline):
            new.kill()
            await exited(new, self.config.exit_grace)

    async def _retire(self, old: Cohort, ready_at: int, new: Cohort) -> bool:
        """Switch: tell every old worker at once to stop accepting; wait for their drain and exit.
        With a bake window the old workers are parked instead, and exit only once the new
        generation passed; True when it failed and the old generation serves again."""
        record = self.record
        parking = self.config.bake_window > 0
        alive = [w for w in old if w.alive]
        for worker in alive:
            self.lend.hand_to_old(record, worker, ready_at)
        for worker in alive:
            if parking:  # whatever an earlier bake left of its parking
                worker.stages.pop(STAGE_RESUMED, None)
                worker.spans_sent.difference_update((SWITCH, DRAIN, EXIT))
            worker.signal(SIGNAL_PARK if parking else signal.SIGTERM)
            if worker.state == SERVING:
                worker.state = SWITCHING
        # One budget for switch + drain: an old generation whose event loop is blocked cannot
        # even stop accepting, and must not hold the upgrade longer than --drain-timeout.
        deadline = time.monotonic_ns() + int((self.config.drain_timeout + 1.0) * 1e9)
        switched = await old.wait_until(
            lambda: all(STAGE_STOPPED_ACCEPTING in w.stages or not w.alive for w in alive), deadline
        )
        now = time.monotonic_ns()
        stops = {w.worker: w.stages.get(STAGE_STOPPED_ACCEPTING, w.exited_at or now) for w in alive}
        # it never said so: from now on it is killed anyway
        stopped = max(stops.values(), default=now) if switched else now
        record.mark("old_stopped_accepting", stopped)
        record.phase(SWITCH, ready_at, stopped)
        record.info["connections_at_switch"] = sum(
            int(w.info.get("connections", w.connections) or 0) for w in alive
        )
        exit_from = 0
        if parking:
            try:
                evidence = await bake(self.config, alive, new, stopped)
            except Exception as exc:  # a bug in the verdict must not leave the old generation parked
                evidence = {
                    "verdict": BAKE_PASS,
                    "reason": None,
                    "detail": f"the bake could not judge: {exc!r}",
                }
            verdict_at = time.monotonic_ns()
            record.phase(BAKE, stopped, verdict_at)
            record.info["bake"] = evidence
            if evidence["verdict"] == BAKE_FAIL and await self._bake_rollback(
                old, new, evidence, ready_at, stopped
            ):
                return True
            for worker in alive:
                worker.signal(signal.SIGTERM)
            exit_from = time.monotonic_ns()
        drained = switched and await old.wait_until(
            lambda: all(STAGE_DRAINED in w.stages or STAGE_PARKED in w.stages or not w.alive for w in alive),
            deadline,
        )
        if not drained:
            for worker in alive:
                if worker.alive and STAGE_DRAINED not in worker.stages:
                    self._kill(worker)
        if not await exited(alive, self.config.exit_grace):  # drained, but did not exit: kill, count
            for worker in alive:
                if worker.alive:
                    self._kill(worker)
            await exited(alive)
        now = time.monotonic_ns()
        ends = {}
        for worker in alive:
            w_stopped = min(stops[worker.worker], stopped)
            w_drained = worker.stages.get(STAGE_PARKED) or worker.stages.get(
                STAGE_DRAINED, worker.exited_at or now
            )
            w_exited = worker.exited_at or now
            ends[worker.worker] = (w_drained, w_exited)
            record.worker_phase(SWITCH, worker.worker, ready_at, w_stopped)
            record.worker_phase(DRAIN, worker.worker, w_stopped, w_drained)
            record.worker_phase(EXIT, worker.worker, max(w_drained, exit_from), w_exited)
        drained_at = max((d for d, _ in ends.values()), default=now)
        record.phase(DRAIN, stopped, drained_at)
        record.phase(EXIT, max(drained_at, exit_from), max((e for _, e in ends.values()), default=now))
        record.info["closed_idle"] = sum(int(w.info.get("closed_idle", "0") or 0) for w in alive)
        exits = {w.describe_exit() for w in alive}
        record.info["old_exit"] = (
            exits.pop()
            if len(exits) == 1
            else "; ".join(f"worker {w.worker} {w.describe_exit()}" for w in alive)
        )
        return False

    async def _bake_rollback(
        self, old: Cohort, new: Cohort, evidence: dict[str, Any], ready_at: int, stopped: int
    ) -> bool:
        """The bake failed: the parked old workers accept again FIRST, then the new generation
        stops accepting and drains (no moment without a generation accepting). False when no
        old worker resumed: the new generation then stays."""
        record, failed_at = self.record, time.monotonic_ns()
        parked = [w for w in old if w.alive]
        stops = {w.worker: min(w.stages.get(STAGE_STOPPED_ACCEPTING, stopped), stopped) for w in parked}
        resumed = await resume(parked)  # (a resumed worker's parking stages are cleared)
        if not resumed:
            evidence["detail"] += "; the parked old generation did not resume, the new one stays"
            return False
        for worker in parked:
            if worker not in resumed and worker.alive:
                self._kill(worker)  # did not answer: its slot is refilled once the upgrade ended
        back = max(w.stages[STAGE_RESUMED] for w in resumed)
        evidence["resumed_ms"] = round((back - stopped) / 1e6, 3)
        for worker in resumed:
            record.worker_phase(SWITCH, worker.worker, ready_at, stops[worker.worker])
            record.worker_phase(DRAIN, worker.worker, stops[worker.worker], worker.stages[STAGE_RESUMED])
        self.lend.promote(old)
        await self._end_new(new)
        new_stops = [w.stages[STAGE_STOPPED_ACCEPTING] for w in new if STAGE_STOPPED_ACCEPTING in w.stages]
        if new_stops:  # > 0: the old generation accepted again before the new one stopped
            evidence["handback_overlap_ms"] = round((min(new_stops) - back) / 1e6, 3)
        record.phase(ROLLBACK, failed_at, time.monotonic_ns())
        record.outcome, record.reason, record.detail = ROLLED_BACK, evidence["reason"], evidence["detail"]
        record.mark("ended")
        return True

    def _kill(self, gen: Generation) -> None:
        gen.kill()
        self.lend.forced_kill()
        self.record.info["forced_kill"] = True
