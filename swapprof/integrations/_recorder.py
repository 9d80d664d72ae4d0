"""What an integration records at the end of each upgrade: the trace, the record, the metrics.

One ``Recorder`` per recording process (a gunicorn master, ``swapprof observe``). Its telemetry
is swapprof's own SDK (``swapprof.telemetry.configure``: spans to ``RUN_DIR/spans.jsonl``, the
metrics for ``/metrics``; OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set). Workers send stamps,
never spans (no SDK in a worker, nothing on its request path but a stamp); the recorder turns
them into spans under each worker's own resource (``process.pid``, ``swapprof.role=generation``,
``swapprof.generation``), so a report shows which process did what, marked
``swapprof.recorded_by`` (``master`` or ``observer``).

Metrics: the reference server's names (``swapprof.upgrades``, ``swapprof.upgrade.phase.duration``,
``swapprof.upgrade.time_to_ready``, ``swapprof.generation``, ``swapprof.generations.alive``,
``swapprof.forced_kills``) plus ``swapprof.upgrade.service_gap`` (s): the time no worker accepted.

Nothing here raises into the host: a failed write is counted (``swapprof.run_dir.write_errors``)
and logged at debug level.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swapprof._vocabulary import (
    DRAIN,
    EXIT,
    IMPORT,
    READY,
    REASON_OK,
    ROLLBACK_REASONS,
    ROLLED_BACK,
    SUCCESS,
)
from swapprof.integrations._timeline import Timeline
from swapprof.server._contract import ATTR_WORKER
from swapprof.server._rundir import RunDir

log = logging.getLogger("swapprof.integrations")

SERVICE_GAP = "swapprof.upgrade.service_gap"
MAX_PROCESS_PROVIDERS = 64
RECENT_RECORDS = 100
OLD_SIDE = frozenset({DRAIN, EXIT})
WORKER_PHASES = frozenset({IMPORT, READY}) | OLD_SIDE
"""Phases each worker has a span of its own for; the rest are the recorder's."""


class Recorder:
    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        role: str,
        generation: Callable[[], int | None],
        generations_alive: Callable[[], int],
    ) -> None:
        from opentelemetry import metrics

        from swapprof.telemetry import configure
        from swapprof.telemetry._api import get_meter

        self.run_dir = RunDir(run_dir)
        self.run_dir.create()
        self.role = role
        self.telemetry = configure(role, run_dir=self.run_dir.path, otel_global=False)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_RECORDS)
        self._providers: collections.OrderedDict[tuple[int, int | None], Any] = collections.OrderedDict()
        meter = get_meter(self.telemetry.meter_provider)
        self.upgrades = meter.create_counter(
            "swapprof.upgrades", description="Upgrades by outcome and reason"
        )
        self.phase_duration = meter.create_histogram(
            "swapprof.upgrade.phase.duration", unit="s", description="Duration of one upgrade phase"
        )
        self.time_to_ready = meter.create_histogram(
            "swapprof.upgrade.time_to_ready",
            unit="s",
            description="Upgrade requested -> new generation READY",
        )
        self.service_gap = meter.create_histogram(
            SERVICE_GAP,
            unit="s",
            description="Time no worker accepted during an upgrade: old ones stopped, no new one ready",
        )
        self.forced_kills = meter.create_counter("swapprof.forced_kills", description="Workers SIGKILLed")
        self.write_errors = meter.create_counter(
            "swapprof.run_dir.write_errors", description="Run-dir writes that failed"
        )
        for counter in (self.forced_kills, self.write_errors):
            counter.add(0)
        self.upgrades.add(0, {"outcome": SUCCESS, "reason": REASON_OK})
        for reason in ROLLBACK_REASONS:
            self.upgrades.add(0, {"outcome": ROLLED_BACK, "reason": reason})

        def gauge(fn: Callable[[], int | None]) -> Callable[[Any], list[Any]]:
            def callback(options: Any) -> list[Any]:
                try:
                    value = fn()
                except Exception:  # a callback never raises into the scrape
                    return []
                return [] if value is None else [metrics.Observation(value)]

            return callback

        meter.create_observable_gauge(
            "swapprof.generation",
            [gauge(generation)],
            description="Number of the serving generation (changes at every upgrade)",
        )
        meter.create_observable_gauge(
            "swapprof.generations.alive",
            [gauge(generations_alive)],
            description="Generations with live workers",
        )

    # -- per upgrade ---------------------------------------------------------------------------
    def finish(
        self, timeline: Timeline, ended_ns: int, outcome: str = SUCCESS, reason: str | None = None
    ) -> dict[str, Any]:
        """Record one ended upgrade: the upgrade record, its metrics, its trace. Never raises."""
        record = timeline.record(ended_ns, outcome, reason)
        data = record.to_dict()
        self.recent.append(data)
        try:
            self.run_dir.append_upgrade(data)
        except OSError:
            log.debug("cannot append to %s", self.run_dir.upgrades, exc_info=True)
            self.write_errors.add(1)
        try:
            self._metrics(data)
        except Exception:
            log.debug("cannot count upgrade %s", timeline.id, exc_info=True)
        try:
            self._trace(timeline, record, data)
        except Exception:
            log.debug("cannot record the trace of upgrade %s", timeline.id, exc_info=True)
        return data

    def forced_kill(self) -> None:
        try:
            self.forced_kills.add(1)
        except Exception:
            log.debug("cannot count a forced kill", exc_info=True)

    def _metrics(self, data: dict[str, Any]) -> None:
        for span in data["spans"]:
            self.phase_duration.record((span["end_ns"] - span["start_ns"]) / 1e9, {"phase": span["phase"]})
        self.upgrades.add(1, {"outcome": data["outcome"], "reason": data["reason"]})
        if data.get("time_to_ready_ms") is not None:
            self.time_to_ready.record(data["time_to_ready_ms"] / 1e3, {"spawn_mode": data["spawn_mode"]})
        if data.get("service_gap_ms") is not None:
            self.service_gap.record(data["service_gap_ms"] / 1e3, {"server": data["server"]})

    def _trace(self, timeline: Timeline, record: Any, data: dict[str, Any]) -> None:
        from swapprof.telemetry._handoff import HandoffRecorder, epoch_ns

        root = HandoffRecorder.start(
            start_ns=epoch_ns(timeline.requested_ns),
            attributes={
                "swapprof.upgrade.id": timeline.id,
                "swapprof.trigger": timeline.trigger,
                "swapprof.server": timeline.server,
            },
            record_metrics=False,
            tracer_provider=self.telemetry.tracer_provider,
        )
        mine: dict[str, Any] = {"swapprof.recorded_by": self.role}
        for span in data["spans"]:
            name = span["phase"]
            if name in WORKER_PHASES and data["worker_phases_ms"]:
                continue  # each worker's own span, below
            root.record_phase(name, epoch_ns(span["start_ns"]), epoch_ns(span["end_ns"]), **mine)
        for name, index, start, end in record.worker_spans:
            pid = timeline.pid_of(name, index)
            old = name in OLD_SIDE
            generation = timeline.old_generation if old else timeline.new_generation
            worker = HandoffRecorder(
                parent=root._parent,
                tracer_provider=self._provider(pid, generation),
                record_metrics=False,
            )
            worker.record_phase(
                name, epoch_ns(start), epoch_ns(end), **{ATTR_WORKER: index, "swapprof.pid": pid, **mine}
            )
        for key, value in (
            ("swapprof.generation.old", timeline.old_generation),
            ("swapprof.generation.new", timeline.new_generation),
            ("swapprof.pid.old", timeline.old_pid),
            ("swapprof.pid.new", timeline.new_pid),
            ("swapprof.workers", len(timeline.new) or None),
            ("swapprof.spawn_mode", timeline.spawn_mode),
            ("swapprof.service_gap_ms", data.get("service_gap_ms")),
        ):
            root.set_attribute(key, value)
        root.set_outcome(data["outcome"], data["reason"])
        root.end(epoch_ns(record.marks["ended"]))

    def _provider(self, pid: int | None, generation: int | None) -> Any:
        """A tracer provider whose resource is the worker process ``pid`` (shares the exporters)."""
        if pid is None:
            return self.telemetry.tracer_provider
        key = (pid, generation)
        found = self._providers.get(key)
        if found is None:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider

            attributes: dict[str, Any] = {"process.pid": pid, "swapprof.role": "generation"}
            if generation is not None:
                attributes["swapprof.generation"] = generation
            main = self.telemetry.tracer_provider
            found = TracerProvider(resource=main.resource.merge(Resource(attributes)), shutdown_on_exit=False)
            # the same processors (span file, OTLP) as this process's own spans; never shut down here
            found.add_span_processor(main._active_span_processor)
            self._providers[key] = found
            while len(self._providers) > MAX_PROCESS_PROVIDERS:
                self._providers.popitem(last=False)
        return found

    # -- the run dir ---------------------------------------------------------------------------
    def write_state(self, name: str, state: dict[str, Any]) -> Path | None:
        path = self.run_dir.path / name
        try:
            self.run_dir.write_json(path, state, indent=2)
            return path
        except OSError:
            self.write_errors.add(1)
            return None

    def close(self, timeout: float | None = None) -> None:
        self.telemetry.shutdown(timeout)
