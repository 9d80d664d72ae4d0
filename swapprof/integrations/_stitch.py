"""Stitching: workers' events and a server's facts into one ``Timeline`` per upgrade.

Both recorders use it: the gunicorn master's recorder thread (facts from gunicorn's hooks) and
``swapprof observe`` (facts from the process tree it watches). Each knows when an upgrade
begins (a HUP, a USR2) and which processes appear and disappear; the workers say the rest
(``_events``). ``Stitcher`` keeps the live workers (generation, index), the pending upgrade,
and ends it once the old workers are gone and every new one is ready -- and, when they served
a first request in time, that too (``SERVE_WAIT_S``) -- or at ``MAX_UPGRADE_S``.

Overlapping upgrades: a second request while one is pending ends the first where it stands
(its workers as they were) and starts the next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from swapprof._vocabulary import CANCELLED, REASON_READY_TIMEOUT, REASON_STOPPING, SUCCESS, TRIGGER_SIGNAL
from swapprof.integrations import _events as ev
from swapprof.integrations._timeline import Timeline, Worker

log = logging.getLogger("swapprof.integrations")

SERVE_WAIT_S = 5.0
"""How long after the upgrade is otherwise complete to wait for each new worker's first request."""
MAX_UPGRADE_S = 300.0
WORKER_EVENTS = frozenset(
    {ev.STARTED, ev.IMPORTED, ev.LIFESPAN_READY, ev.SERVED, ev.SHUTDOWN, ev.STOPPED, ev.TERM, ev.REAPED}
)
MAX_STRAY_PIDS = 1024


class Stitcher:
    def __init__(self, server: str, finish: Callable[[Timeline, int, str, str | None], Any]) -> None:
        self.server = server
        self.generation = 1
        self.next_id = 1
        self.workers: dict[int, tuple[int, int]] = {}
        """pid -> (generation, index) of every live worker."""
        self.stamps: dict[int, dict[str, int]] = {}
        """pid -> event -> ns, for events that came before the process was known."""
        self.pending: Timeline | None = None
        self._complete_at: int | None = None
        self._finish = finish

    # -- facts -----------------------------------------------------------------------------------
    def begin(self, ns: int, *, trigger: str = TRIGGER_SIGNAL, **fields: Any) -> Timeline:
        """An upgrade was requested at ``ns``: the live workers of the serving generation are its old side."""
        if self.pending is not None:
            self.end(max(ns, self.pending.requested_ns))
        timeline = Timeline(
            id=self.next_id,
            trigger=trigger,
            server=self.server,
            requested_ns=ns,
            requested_wall=time.time() - (time.monotonic_ns() - ns) / 1e9,
            old_generation=self.generation,
            new_generation=self.generation + 1,
        )
        for key, value in fields.items():
            setattr(timeline, key, value)
        self.next_id = timeline.id + 1
        for pid, (generation, index) in self.workers.items():
            if generation == timeline.old_generation:
                self._merge(timeline.worker("old", pid, index))
        self.generation = timeline.new_generation or self.generation
        self.pending, self._complete_at = timeline, None
        return timeline

    def started(self, pid: int, generation: int, index: int, ns: int | None = None) -> None:
        """A worker process of ``generation`` exists (forked, or seen in the process tree)."""
        self.workers[pid] = (generation, index)
        if ns is not None:
            self.stamp(pid, ev.STARTED, ns)
        pending = self.pending
        if pending is not None and generation == pending.new_generation:
            self._merge(pending.worker("new", pid, index))

    def gone(self, pid: int, ns: int) -> None:
        self.stamp(pid, ev.REAPED, ns)
        self.workers.pop(pid, None)
        self.stamps.pop(pid, None)

    def stamp(self, pid: int, name: str, ns: int) -> None:
        if name not in WORKER_EVENTS:
            return
        pending = self.pending
        worker = None
        if pending is not None:
            worker = pending.new.get(pid) or pending.old.get(pid)
        if worker is not None:
            worker.stamp(name, ns)
        elif pid not in self.workers or name != ev.REAPED:
            self.stamps.setdefault(pid, {}).setdefault(name, ns)
            while len(self.stamps) > MAX_STRAY_PIDS:
                self.stamps.pop(next(iter(self.stamps)))

    def event(self, message: dict[str, Any]) -> None:
        """A worker's own event (``_events``)."""
        try:
            self.stamp(int(message["pid"]), str(message["event"]), int(message["ns"]))
        except (KeyError, TypeError, ValueError):
            log.debug("malformed event %r", message)

    def _merge(self, worker: Worker) -> None:
        for name, ns in self.stamps.pop(worker.pid, {}).items():
            worker.stamp(name, ns)

    # -- ending ----------------------------------------------------------------------------------
    def check(self, now_ns: int | None = None, old_gone: bool | None = None) -> dict[str, Any] | None:
        """End the pending upgrade when it is complete; returns its record then."""
        pending = self.pending
        if pending is None:
            return None
        now = time.monotonic_ns() if now_ns is None else now_ns
        if now - pending.requested_ns > MAX_UPGRADE_S * 1e9:
            return self.end(now, CANCELLED, REASON_READY_TIMEOUT)
        gone = pending.old_gone() if old_gone is None else old_gone
        if not (gone and pending.new_ready()):
            return None
        if self._complete_at is None:
            self._complete_at = now
        if pending.served_by_all() or now - self._complete_at > SERVE_WAIT_S * 1e9:
            return self.end(self._ended(pending, now))
        return None

    def end(self, ended_ns: int, outcome: str = SUCCESS, reason: str | None = None) -> dict[str, Any] | None:
        pending, self.pending, self._complete_at = self.pending, None, None
        if pending is None:
            return None
        if outcome == SUCCESS and not pending.new_ready():
            outcome, reason = CANCELLED, REASON_STOPPING
        result: dict[str, Any] | None = self._finish(pending, ended_ns, outcome, reason)
        return result

    def stop(self, now_ns: int | None = None) -> dict[str, Any] | None:
        """The recorder is stopping: a pending upgrade ends as it stands."""
        if self.pending is None:
            return None
        now = time.monotonic_ns() if now_ns is None else now_ns
        if self.pending.new_ready() and self.pending.old_gone():
            return self.end(self._ended(self.pending, now))
        return self.end(now, CANCELLED, REASON_STOPPING)

    @staticmethod
    def _ended(pending: Timeline, now: int) -> int:
        """The last thing that happened: an old worker gone, a new one ready (not when we noticed)."""
        marks = [w.gone for w in pending.old.values() if w.gone is not None]
        marks += [r[0] for w in pending.new.values() if (r := w.ready) is not None]
        return max(marks) if marks else now

    def generations_alive(self) -> int:
        return len({generation for generation, _ in self.workers.values()})

    def free_index(self, generation: int) -> int:
        used = {index for gen, index in self.workers.values() if gen == generation}
        return next(i for i in range(len(used) + 1) if i not in used)
