"""A cap on the connections a master endpoint holds open (the debug port, the control socket).

Nobody can take the master's fds by opening connections and idling: at the cap, a new
connection closes the oldest one still waiting for its request (as nginx reclaims idle
keep-alive connections when it runs out), so a real request always gets in unless every slot
is busy answering one. Each connection is *idle* from accept until its request is read, then
*busy* until it is answered.
"""

from __future__ import annotations

import asyncio


class ConnectionCap:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.evicted = 0
        self._idle: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self._busy: set[asyncio.StreamWriter] = set()

    @property
    def open(self) -> int:
        return len(self._idle) + len(self._busy)

    def admit(self, writer: asyncio.StreamWriter) -> bool:
        """Take ``writer`` in, closing the oldest idle connection at the cap; False when every
        slot is busy (the caller answers 503 / busy and closes)."""
        if self.open >= self.limit:
            if not self._idle:
                return False
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            oldest.transport.abort()
            self.evicted += 1
        self._idle[writer] = None
        return True

    def working(self, writer: asyncio.StreamWriter) -> None:
        """``writer``'s request is in: it is no longer idle, so never closed for a newcomer."""
        if self._idle.pop(writer, 0) is None:
            self._busy.add(writer)

    def release(self, writer: asyncio.StreamWriter) -> None:
        self._idle.pop(writer, None)
        self._busy.discard(writer)
