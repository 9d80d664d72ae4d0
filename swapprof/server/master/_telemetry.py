"""The master's telemetry: one trace per upgrade, the upgrade metrics, the handoff files.

Who records which span: the master records the root ``swapprof.upgrade`` and ``requested``,
``spawn`` and ``rollback``; the new generation ``import`` and ``ready``; the old generation
``switch``, ``drain`` and ``exit`` (it learns the upgrade's trace context from a handoff file
the master writes before signalling it). With N workers each worker records its own spans,
with ``swapprof.worker`` (its index): N ``import``/``ready`` pairs and N ``switch``/``drain``/
``exit`` triples under one root. Each worker reports over sd_notify which spans it has flushed
(``SWAPPROF_SPANS``); for a phase a worker did not report -- one that crashed or was SIGKILLed
-- the master records that worker's span itself, marked ``swapprof.recorded_by=master``, so
every trace is complete. Histograms and counters live in the master only; the per-worker
label ``worker`` (bounded by --workers) is on ``swapprof.drain.connections`` and
``swapprof.worker.scrape.errors``; the workers' own metrics reach /metrics through ``_fleet``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from swapprof._vocabulary import (
    BAKE,
    BAKE_VERDICTS,
    NEW_GENERATION_PHASES,
    OLD_GENERATION_PHASES,
    REASON_OK,
    REQUESTED,
    ROLLBACK,
    ROLLBACK_REASONS,
    ROLLED_BACK,
    SPAWN,
    SUCCESS,
)
from swapprof.server._contract import ATTR_WORKER
from swapprof.server._rundir import RunDir
from swapprof.server.master._child import Generation
from swapprof.server.master._cohort import Cohort
from swapprof.server.master._record import UpgradeRecord

log = logging.getLogger("swapprof.server")

SPAN_REPORT_WAIT_S = 5.0
MASTER_PHASES = frozenset(
    {REQUESTED, SPAWN, BAKE, ROLLBACK}
)  # the master's own; others it records for a child


class UpgradeObserver:
    def __init__(
        self,
        run_dir: RunDir,
        *,
        serving: Callable[[], Cohort | None],
        generations: Callable[[], Iterable[Generation]],
    ) -> None:
        from opentelemetry import metrics

        from swapprof.telemetry import configure
        from swapprof.telemetry._api import get_meter
        from swapprof.telemetry._handoff import epoch_ns

        self.run_dir = run_dir
        # the master runs no app code: its SDK is never the process-global one
        self.telemetry = configure("master", run_dir=run_dir.path, otel_global=False)
        self._epoch = epoch_ns
        self._recorders: dict[int, Any] = {}
        self._finishing: set[asyncio.Task[None]] = set()
        self.meter = meter = get_meter(self.telemetry.meter_provider)
        self.time_to_ready = meter.create_histogram(
            "swapprof.upgrade.time_to_ready",
            unit="s",
            description="Upgrade requested -> new generation READY",
        )
        self.forced_kills = meter.create_counter("swapprof.forced_kills", description="Generations SIGKILLed")
        self.phase_duration = meter.create_histogram(
            "swapprof.upgrade.phase.duration", unit="s", description="Duration of one upgrade phase"
        )
        self.upgrades = meter.create_counter(
            "swapprof.upgrades", description="Upgrades by outcome and reason"
        )
        self.worker_restarts = meter.create_counter(
            "swapprof.worker.restarts",
            description="Workers of the serving generation replaced after dying on their own",
        )
        self.worker_restarts.add(0)  # the series exists before the first restart
        self.write_errors = meter.create_counter(
            "swapprof.run_dir.write_errors",
            description="Run-dir writes that failed (ENOSPC, EMFILE): the master went on without them",
        )
        self.write_errors.add(0)
        self.unexported = meter.create_counter(
            "swapprof.telemetry.unexported_spans",
            description="Worker spans the master recorded itself: the worker died, or its export "
            "did not finish within SWAPPROF_FLUSH_TIMEOUT",
        )
        self.unexported.add(0)
        self.bake_verdicts = meter.create_counter(
            "swapprof.bake.verdicts",
            description="Bake windows by verdict (pass, fail, too_little_traffic, old_gone)",
        )
        self.coalesced = meter.create_counter(
            "swapprof.upgrade.requests.coalesced",
            description="Upgrade requests merged into a pending upgrade",
        )
        self.preload_drops = meter.create_counter(
            "swapprof.zygote.preload.dropped",
            description="Learned modules (--preload auto) a zygote dropped, by reason: import_failed, "
            "thread, open_fds, app_code",
        )
        # Counters exist from the start, at 0, for their known label sets: a dashboard shows 0, not
        # "No data", and increase() sees the first event.
        self.forced_kills.add(0)
        self.coalesced.add(0)
        self.upgrades.add(0, {"outcome": SUCCESS, "reason": REASON_OK})
        for reason in ROLLBACK_REASONS:
            self.upgrades.add(0, {"outcome": ROLLED_BACK, "reason": reason})
        for verdict in BAKE_VERDICTS:
            self.bake_verdicts.add(0, {"verdict": verdict})

        def gauge(fn: Callable[[], float | None]) -> Callable[[Any], list[Any]]:
            def callback(options: Any) -> list[Any]:
                value = fn()
                return [] if value is None else [metrics.Observation(value)]

            return callback

        meter.create_observable_gauge(
            "swapprof.generation",
            [gauge(lambda: gen.number if (gen := serving()) is not None else None)],
            description="Number of the serving generation (changes at every successful upgrade)",
        )
        meter.create_observable_gauge(
            "swapprof.generations.alive",
            [gauge(lambda: len({g.number for g in generations() if g.alive}))],
            description="Generation processes alive",
        )

        def draining(options: Any) -> list[Any]:
            by_worker: dict[int, int] = {}
            for g in generations():  # every live worker index has a series: 0 when none drains
                by_worker.setdefault(g.worker, 0)
                if g.state in ("switching", "draining"):
                    by_worker[g.worker] += g.connections
            return [metrics.Observation(n, {"worker": str(w)}) for w, n in sorted(by_worker.items())]

        meter.create_observable_gauge(
            "swapprof.drain.connections",
            [draining],
            description="Connections still open in draining generations, by worker index",
        )

    def count_scrape_errors(self, errors: dict[tuple[int, str], int]) -> None:
        """Export ``errors`` ((worker, reason) -> failed reads of a worker's metrics, kept by
        ``_fleet``) as ``swapprof.worker.scrape.errors``."""
        from opentelemetry.metrics import Observation

        def observe(options: Any) -> list[Any]:
            return [Observation(n, {"worker": str(w), "reason": r}) for (w, r), n in sorted(errors.items())]

        self.meter.create_observable_counter(
            "swapprof.worker.scrape.errors",
            [observe],
            description="Reads of a worker's metrics that failed (the master served its last read)",
        )

    # -- per upgrade ---------------------------------------------------------------------------
    def begin(self, record: UpgradeRecord) -> None:
        from swapprof.telemetry._handoff import HandoffRecorder

        self._recorders[record.id] = HandoffRecorder.start(
            start_ns=self._epoch(record.requested_ns),
            attributes={"swapprof.upgrade.id": record.id, "swapprof.trigger": record.trigger},
            record_metrics=False,  # the observer counts at once; spans may wait for the generations
            tracer_provider=self.telemetry.tracer_provider,
        )

    def child_env(self, record: UpgradeRecord, env: dict[str, str]) -> dict[str, str]:
        recorder = self._recorders.get(record.id)
        return recorder.child_env(env) if recorder is not None else env

    def hand_to_old(self, record: UpgradeRecord, old: Generation, ready_ns: int) -> None:
        """Write the trace context the old generation records switch/drain/exit under."""
        recorder = self._recorders.get(record.id)
        if recorder is None:
            return
        context = {"traceparent": recorder.traceparent, "ready_ns": ready_ns}
        try:
            self.run_dir.write_json(self.run_dir.handoff(old.number, old.worker), context)
        except OSError:  # a full disk: the old generation records its spans without a parent
            self.write_error()

    def coalesced_request(self) -> None:
        with contextlib.suppress(Exception):
            self.coalesced.add(1)

    def preload_dropped(self, reason: str, count: int = 1) -> None:
        with contextlib.suppress(Exception):
            self.preload_drops.add(count, {"reason": reason})

    def write_error(self) -> None:
        with contextlib.suppress(Exception):
            self.write_errors.add(1)

    def worker_restart(self) -> None:
        with contextlib.suppress(Exception):
            self.worker_restarts.add(1)

    def forced_kill(self) -> None:
        with contextlib.suppress(Exception):
            self.forced_kills.add(1)

    def finish(self, record: UpgradeRecord, new: Cohort | None, old: Cohort | None) -> None:
        """Close the trace once the workers said which spans they sent (bounded wait)."""
        try:
            self._metrics(record)
        except Exception:
            log.debug("cannot count upgrade %s", record.id, exc_info=True)
        recorder = self._recorders.pop(record.id, None)
        if recorder is None:
            return
        # the processes as they are now: a slot refilled later is another process
        workers = {("new", w.worker): w for w in (new or ())} | {("old", w.worker): w for w in (old or ())}
        task = asyncio.create_task(self._finish(record, recorder, workers))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(
        self, record: UpgradeRecord, recorder: Any, workers: dict[tuple[str, int], Generation]
    ) -> None:
        wanted: dict[tuple[str, int], set[str]] = {}
        for name, worker, _, _ in record.worker_spans:
            side = "old" if name in OLD_GENERATION_PHASES else "new"
            wanted.setdefault((side, worker), set()).add(name)
        deadline = time.monotonic_ns() + int(SPAN_REPORT_WAIT_S * 1e9)
        for key, names in wanted.items():
            gen = workers.get(key)
            if gen is not None:
                await gen.wait_until(lambda g=gen, n=names: not g.alive or n <= g.spans_sent, deadline)  # type: ignore[misc]
        try:
            self._record(record, recorder, workers)
        except Exception:
            log.debug("cannot record upgrade %s", record.id, exc_info=True)

    def _record(
        self, record: UpgradeRecord, recorder: Any, workers: dict[tuple[str, int], Generation]
    ) -> None:
        child_phases = set(NEW_GENERATION_PHASES) | set(OLD_GENERATION_PHASES)
        for name, start, end in record.spans:
            if name in child_phases:
                continue  # in the trace as each worker's own span (below)
            error = record.detail if name == "rollback" else None
            extra: dict[str, object] = {} if name in MASTER_PHASES else {"swapprof.recorded_by": "master"}
            if name == BAKE:
                from swapprof.server.master._bake import span_attributes

                extra.update(span_attributes(record.info.get("bake") or {}))
            if name == "spawn":
                extra["swapprof.spawn_mode"] = record.info.get("spawn_mode", "exec")
                extra["swapprof.spare"] = bool(record.info.get("spare"))
                if record.info.get("spawn_mode") == "fork":  # was the zygote's set learned (--preload auto)?
                    extra["swapprof.zygote.learned"] = bool(record.info.get("zygote_learned"))
                elif record.info.get("workers_forked"):  # exec'd once, the workers its forks
                    extra["swapprof.workers_forked"] = int(record.info["workers_forked"])
            recorder.record_phase(name, self._epoch(start), self._epoch(end), error=error, **extra)
        for name, worker, start, end in record.worker_spans:
            gen = workers.get(("old" if name in OLD_GENERATION_PHASES else "new", worker))
            if gen is not None and name in gen.spans_sent:
                continue  # the worker recorded it itself
            attributes = {ATTR_WORKER: worker, "swapprof.recorded_by": "master"}
            recorder.record_phase(name, self._epoch(start), self._epoch(end), **attributes)
            self.unexported.add(1)
        info = record.to_dict()
        for key, value in (
            ("swapprof.generation.old", record.old_generation),
            ("swapprof.generation.new", record.new_generation),
            ("swapprof.pid.old", record.old_pid),
            ("swapprof.pid.new", record.new_pid),
            ("swapprof.workers", len(info.get("new_pids") or ()) or None),
            ("swapprof.worker.failed", info.get("failed_worker")),
            ("swapprof.coalesced", record.coalesced),
            ("swapprof.connections_at_switch", info.get("connections_at_switch")),
            ("swapprof.fds.new", info.get("new_fds")),
            ("swapprof.spawn_mode", info.get("spawn_mode")),
            ("swapprof.probe_attempts", info.get("probe_attempts")),
            ("swapprof.detail", record.detail or None),
        ):
            recorder.set_attribute(key, value)
        recorder.set_outcome(record.outcome or "unknown", record.reason)
        recorder.end(self._epoch(record.marks.get("ended", record.requested_ns)))

    def _metrics(self, record: UpgradeRecord) -> None:
        for name, start, end in record.spans:
            self.phase_duration.record((end - start) / 1e9, {"phase": name})
        self.upgrades.add(1, {"outcome": record.outcome or "unknown", "reason": record.reason or "unknown"})
        verdict = (record.info.get("bake") or {}).get("verdict")
        if verdict:
            self.bake_verdicts.add(1, {"verdict": verdict})
        ready = record.marks.get("new_ready")
        if ready is not None:
            mode = {"spawn_mode": str(record.info.get("spawn_mode", "exec"))}
            self.time_to_ready.record((ready - record.requested_ns) / 1e9, mode)

    async def close(self) -> None:
        if self._finishing:
            await asyncio.wait(list(self._finishing), timeout=SPAN_REPORT_WAIT_S + 1)
        await asyncio.get_running_loop().run_in_executor(None, self.telemetry.shutdown)
