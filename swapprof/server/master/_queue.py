"""The upgrade queue: at most one upgrade runs; requests made meanwhile coalesce.

Policy (reason code ``coalesced``): while an upgrade runs, further requests coalesce into at
most ONE follow-up upgrade, started when the running one has ended, so it picks up whatever
code changed meanwhile. The follow-up's record counts how many requests it absorbed
(``coalesced``); every requester waiting on it gets its outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from swapprof._vocabulary import CANCELLED, REASON_STOPPING
from swapprof.server.master._record import UpgradeRecord


class UpgradeQueue:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        start: Callable[[UpgradeRecord], None],
        *,
        begin: Callable[[UpgradeRecord], None] = lambda record: None,
        absorbed: Callable[[], None] = lambda: None,
    ) -> None:
        """``start(record)`` runs an upgrade and calls ``ended(record)`` when it is over;
        ``begin(record)`` sees every new record; ``absorbed()`` every coalesced request."""
        self.loop = loop
        self._start, self._begin, self._absorbed = start, begin, absorbed
        self.current: UpgradeRecord | None = None
        self.pending: UpgradeRecord | None = None
        self.coalesced_total = 0
        self.stopping = False
        self._next_id = 1

    def request(self, trigger: str) -> asyncio.Future[dict[str, Any]]:
        """Ask for an upgrade; the future resolves to its record when it has ended."""
        if self.stopping:
            fut: asyncio.Future[dict[str, Any]] = self.loop.create_future()
            fut.set_result({"outcome": CANCELLED, "reason": REASON_STOPPING})
            return fut
        if self.current is None:
            record = self._new(trigger)
            self._run(record)
        elif self.pending is None:
            record = self.pending = self._new(trigger)
        else:
            record = self.pending
            record.coalesced += 1
            self.coalesced_total += 1
            self._absorbed()
        assert record.done is not None
        return record.done

    def ended(self, record: UpgradeRecord, result: dict[str, Any]) -> bool:
        """``record`` is over: answer its waiters; start the follow-up if there is one (True)."""
        if self.current is record:
            self.current = None
        if record.done is not None and not record.done.done():
            record.done.set_result(result)
        if self.pending is not None and not self.stopping:
            pending, self.pending = self.pending, None
            self._run(pending)
            return True
        return False

    def cancel(self) -> None:
        """The master stops: no new upgrade starts; waiters of unfinished ones get ``cancelled``."""
        self.stopping = True
        for record in (self.current, self.pending):
            if record is not None and record.done is not None and not record.done.done():
                record.outcome, record.reason = CANCELLED, REASON_STOPPING
                record.done.set_result(record.to_dict())

    @property
    def idle(self) -> bool:
        return self.current is None and self.pending is None

    def _new(self, trigger: str) -> UpgradeRecord:
        record = UpgradeRecord(id=self._next_id, trigger=trigger)
        self._next_id += 1
        record.done = self.loop.create_future()
        self._begin(record)
        return record

    def _run(self, record: UpgradeRecord) -> None:
        self.current = record
        self._start(record)
