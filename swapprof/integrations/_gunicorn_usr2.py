"""A gunicorn USR2 upgrade that did not take: the old master records it as rolled back.

After a USR2 the old master forks a child that execs the new master; it keeps serving until the
operator retires it. If the new master goes first -- its workers cannot load the app (gunicorn
halts it with ``Worker failed to boot.``), it crashes before its hooks run, or the operator
backs the upgrade out by stopping it -- the old master is still the one serving, and the one
whose ``/metrics`` is scraped, so it records the upgrade, as ``rolled_back``:

- ``pre_exec`` in the child tells the old master the upgrade it hands over (``ev.USR2``: its
  id, the child's pid, the stamp); the old master watches that pid (a pidfd).
- A new master stopping while its old master lives hands its side back (``ev.HANDBACK``: why,
  and its workers' stamps) instead of recording; the reason is read from gunicorn's
  ``HaltServer`` (the first one ``reap_workers`` raised, else the one being handled while
  ``on_exit`` runs): ``import_error`` for a worker or app that failed to load,
  ``exited_before_ready`` for another halt, ``master_stopping`` when it was asked to stop.
- When the child is gone, the old master records the upgrade with what it was handed
  (``crashed_before_ready`` if nothing was), and writes its own ``state.json`` again.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from swapprof._vocabulary import (
    REASON_CRASHED,
    REASON_EXITED,
    REASON_IMPORT_ERROR,
    REASON_STOPPING,
    TRIGGER_SIGNAL,
)
from swapprof.integrations import _events as ev
from swapprof.integrations._timeline import Timeline

LOAD_FAILURES = (3, 4)
"""gunicorn's exit statuses for a worker that failed to boot and an app that failed to load."""


def halt_status(exc: BaseException | None) -> int | None:
    """The exit status of gunicorn's ``HaltServer`` ``exc`` (None for any other exception)."""
    status = getattr(exc, "exit_status", None) if type(exc).__name__ == "HaltServer" else None
    return status if isinstance(status, int) else None


def halt_reason(noted: int | None = None) -> str:
    """Why this gunicorn master is stopping: the halt status ``noted`` when gunicorn raised one,
    else the ``HaltServer`` being handled (``on_exit`` runs inside gunicorn's handler)."""
    status = noted if noted is not None else halt_status(sys.exc_info()[1])
    if status is None:
        return REASON_STOPPING
    return REASON_IMPORT_ERROR if status in LOAD_FAILURES else REASON_EXITED


def handback(pending: Timeline, reason: str) -> dict[str, Any]:
    """The new master's side of a USR2 it will not finish, for the old master."""
    new = {str(pid): {"index": w.index, "stamps": w.stamps} for pid, w in pending.new.items()}
    return ev.event(ev.HANDBACK, id=pending.id, reason=reason, new=new, expected=pending.expected_new)


class HandedOver:
    """In the old master: the USR2 upgrade its child took over, until the child is gone."""

    def __init__(self, message: Mapping[str, Any], generation: int, old_pid: int) -> None:
        self.child = int(message["child"])
        self.reason: str | None = None
        self.timeline = Timeline(
            id=int(message["id"]),
            trigger=TRIGGER_SIGNAL,
            server="gunicorn",
            requested_ns=int(message["ns"]),
            spawn_ns=int(message["ns"]),
            old_generation=generation,
            new_generation=generation + 1,
            old_pid=old_pid,
            new_pid=self.child,
            spawn_mode="exec",
        )

    def handed_back(self, message: Mapping[str, Any]) -> None:
        if int(message.get("id") or 0) != self.timeline.id:
            return
        self.reason = str(message.get("reason") or REASON_CRASHED)
        self.timeline.expected_new = int(message.get("expected") or 0)
        for pid, side in (message.get("new") or {}).items():
            worker = self.timeline.worker("new", int(pid), int(side.get("index") or 0))
            for name, ns in (side.get("stamps") or {}).items():
                worker.stamp(str(name), int(ns))
