"""One observed upgrade as facts (CLOCK_MONOTONIC stamps per process), turned into phases.

The facts come from a server's hooks or from its workers' events (``_events``); the phases are
swapprof's (``swapprof._vocabulary``) and the record is the reference server's
(``UpgradeRecord.to_dict``), so ``swapprof report``, the dashboards and the gate read both alike.

Per new worker: ``import`` = started -> imported, ``ready`` = imported -> ready, where ready is
its ASGI lifespan startup done, else its first served request, else (no lifespan, no request)
imported: the earliest it could have served (``READY_SOURCES``). Per old worker: ``drain`` = told to stop (or its
shutdown began) -> stopped, ``exit`` = stopped -> gone. For the generation, on its critical path
(each phase ends when the LAST worker reached its end): ``requested`` -> ``spawn`` -> ``import``
-> ``ready``; ``switch`` (the old workers told to stop), ``drain``, ``exit``; and ``gap``, the
time no worker accepted: from the last old worker told to stop to the first new worker ready
(``service_gap_ms``; 0 when the old ones kept serving until a new one did).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from swapprof._vocabulary import (
    DRAIN,
    EXIT,
    GAP,
    IMPORT,
    READY,
    REQUESTED,
    SPAWN,
    SUCCESS,
    SWITCH,
)
from swapprof.integrations import _events as ev
from swapprof.server.master._record import UpgradeRecord

READY_SOURCES = (ev.LIFESPAN_READY, ev.SERVED, ev.IMPORTED)
"""What marks a new worker ready, best first: its ASGI lifespan startup done (the server listens
right after), else its first response (exact under load, later than ready without it), else
the app imported (gunicorn's ``post_worker_init``: the earliest it could serve)."""


@dataclass
class Worker:
    pid: int
    index: int = 0
    stamps: dict[str, int] = field(default_factory=dict)

    def stamp(self, name: str, ns: int) -> None:
        self.stamps.setdefault(name, ns)  # the first report counts

    @property
    def ready(self) -> tuple[int, str] | None:
        for source in READY_SOURCES:
            if source in self.stamps:
                return self.stamps[source], source
        return None

    @property
    def stopped_accepting(self) -> int | None:
        """When it stopped taking new connections: told to stop, or its shutdown began."""
        found = [self.stamps[n] for n in (ev.TERM, ev.SHUTDOWN) if n in self.stamps]
        return min(found) if found else None

    @property
    def gone(self) -> int | None:
        return self.stamps.get(ev.REAPED)


@dataclass
class Timeline:
    id: int
    trigger: str
    server: str
    requested_ns: int = field(default_factory=time.monotonic_ns)
    requested_wall: float = field(default_factory=time.time)
    spawn_ns: int | None = None
    old_generation: int | None = None
    new_generation: int | None = None
    old_pid: int | None = None
    new_pid: int | None = None
    spawn_mode: str = "fork"
    new: dict[int, Worker] = field(default_factory=dict)
    old: dict[int, Worker] = field(default_factory=dict)
    expected_new: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def worker(self, side: str, pid: int, index: int | None = None) -> Worker:
        workers = self.new if side == "new" else self.old
        found = workers.get(pid)
        if found is None:
            found = workers[pid] = Worker(pid, len(workers) if index is None else index)
        elif index is not None:
            found.index = index
        return found

    # -- state ---------------------------------------------------------------------------------
    def new_ready(self) -> bool:
        expected = max(self.expected_new, 1)
        return len([w for w in self.new.values() if w.ready]) >= expected

    def served_by_all(self) -> bool:
        return self.new_ready() and all(ev.SERVED in w.stamps for w in self.new.values())

    def old_gone(self) -> bool:
        return all(w.gone is not None for w in self.old.values())

    # -- the record ----------------------------------------------------------------------------
    def record(self, ended_ns: int, outcome: str = SUCCESS, reason: str | None = None) -> UpgradeRecord:
        rec = UpgradeRecord(id=self.id, trigger=self.trigger, requested_ns=self.requested_ns)
        rec.requested_wall = self.requested_wall
        rec.old_generation, rec.new_generation = self.old_generation, self.new_generation
        rec.old_pid, rec.new_pid = self.old_pid, self.new_pid
        rec.outcome, rec.reason = outcome, reason or ("ok" if outcome == SUCCESS else "unknown")
        for name, index, start, end in self.worker_phases():
            rec.worker_phase(name, index, start, end)
        at = self.requested_ns
        spawn = self.spawn_ns if self.spawn_ns is not None else at
        rec.phase(REQUESTED, at, spawn)
        at = spawn
        for name, stamp in ((SPAWN, ev.STARTED), (IMPORT, ev.IMPORTED)):
            ends = [w.stamps[stamp] for w in self.new.values() if stamp in w.stamps]
            if ends:
                rec.phase(name, at, max(at, max(ends)))
                at = max(at, max(ends))
        readies = [r for w in self.new.values() if (r := w.ready) is not None]
        if readies:
            rec.phase(READY, at, max(at, max(ns for ns, _ in readies)))
            rec.mark("new_ready", max(at, max(ns for ns, _ in readies)))
        stops = [s for w in self.old.values() if (s := w.stopped_accepting) is not None]
        if stops:
            rec.phase(SWITCH, min(stops), max(stops))
            rec.mark("old_stopped_accepting", max(stops))
            stopped = [w.stamps.get(ev.STOPPED) or w.gone or max(stops) for w in self.old.values()]
            rec.phase(DRAIN, max(stops), max(stopped))
            gone = [w.gone for w in self.old.values() if w.gone is not None]
            if gone:
                rec.phase(EXIT, max(stopped), max(max(gone), max(stopped)))
        gap_ms, source = self.gap(readies, stops)
        if gap_ms is not None and gap_ms > 0:
            first = min(ns for ns, _ in readies)
            rec.phase(GAP, max(stops), first)
        rec.mark("ended", max(ended_ns, self.requested_ns))
        rec.info.update(self.info)
        rec.info.update(
            {
                "server": self.server,
                "spawn_mode": self.spawn_mode,
                "new_pids": sorted(self.new),
                "old_pids": sorted(self.old),
                "service_gap_ms": gap_ms,
                "service_gap_source": source,
                "ready_sources": {str(w.index): r[1] for w in self.new.values() if (r := w.ready)},
            }
        )
        return rec

    def gap(self, readies: list[tuple[int, str]], stops: list[int]) -> tuple[float | None, str | None]:
        """Milliseconds no worker accepted: last old one stopped -> first new one ready."""
        if not readies or not stops or len(stops) < len(self.old):
            return None, None
        first, source = min(readies)
        return round(max(0, first - max(stops)) / 1e6, 3), source

    def worker_phases(self) -> list[tuple[str, int, int, int]]:
        """(phase, worker index, start, end) of each worker's own phases."""
        found = []
        for w in self.new.values():
            start, imported, ready = w.stamps.get(ev.STARTED), w.stamps.get(ev.IMPORTED), w.ready
            if start is not None and imported is not None:
                found.append((IMPORT, w.index, start, imported))
            if imported is not None and ready is not None:
                found.append((READY, w.index, imported, ready[0]))
        for w in self.old.values():
            stop, stopped, gone = w.stopped_accepting, w.stamps.get(ev.STOPPED), w.gone
            if stop is not None and (stopped or gone) is not None:
                found.append((DRAIN, w.index, stop, stopped or gone or stop))
            if stopped is not None and gone is not None:
                found.append((EXIT, w.index, stopped, gone))
        return found

    def pid_of(self, name: str, index: int) -> int | None:
        workers = self.old if name in (DRAIN, EXIT) else self.new
        return next((w.pid for w in workers.values() if w.index == index), None)
