"""Signal handlers that only record: the event loop dispatches, the previous handlers come back.

``handlers = LoopSignals(loop); handlers.install({SIGHUP: upgrade, SIGTERM: stop})`` and,
at shutdown, ``handlers.restore()`` (safe to call twice).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping
from typing import Any


class LoopSignals:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._previous: dict[int, Any] = {}

    def install(self, handlers: Mapping[int, Callable[[], object]]) -> None:
        for signum, handler in handlers.items():
            self._previous[signum] = signal.getsignal(signum)
            self.loop.add_signal_handler(signum, handler)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            self.loop.remove_signal_handler(signum)
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
