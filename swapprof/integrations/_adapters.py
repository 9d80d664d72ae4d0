"""What ``swapprof observe`` needs to know about one server: a page of code per server.

An adapter answers three questions: is this command line that server (``matches``), which
signals start an upgrade (``upgrade_signals``), and which processes of its tree are workers
(``is_worker``: the main process's children, minus helpers such as multiprocessing's resource
tracker). Everything else -- the events, the stitching, the records -- is the same for all.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path


class Adapter:
    name = "generic"
    upgrade_signals: tuple[signal.Signals, ...] = (signal.SIGHUP,)
    helpers: tuple[str, ...] = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")

    @classmethod
    def matches(cls, argv: Sequence[str]) -> bool:
        return bool(argv) and any(Path(arg).name in cls.names() for arg in argv[:3])

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return (cls.name,)

    def is_worker(self, pid: int, cmdline: str) -> bool:
        return not any(helper in cmdline for helper in self.helpers)


class Uvicorn(Adapter):
    """uvicorn ``--workers N``: HUP restarts the workers one by one (a new one, then the old one
    SIGTERMed once the new one answers a pipe ping: alive, not ready)."""

    name = "uvicorn"


class Hypercorn(Adapter):
    """hypercorn ``--workers N``: workers are multiprocessing children; it has no upgrade signal
    of its own (HUP stops it), so upgrades are whatever the operator's signal does."""

    name = "hypercorn"


class Granian(Adapter):
    """granian ``--workers N`` (2.x): HUP respawns the workers one at a time -- a new one, a fixed
    ``--respawn-interval`` sleep (3.5 s by default), then the old one SIGTERMed -- with no
    readiness check. Its workers are forked multiprocessing children (spawned ones on Python
    3.14's default start method, beside multiprocessing's helpers); each binds a listener of its
    own (SO_REUSEPORT), the main process none."""

    name = "granian"


ADAPTERS: tuple[type[Adapter], ...] = (Uvicorn, Hypercorn, Granian)


def adapter_for(argv: Sequence[str], name: str | None = None) -> Adapter:
    for cls in ADAPTERS:
        if cls.name == name or (name is None and cls.matches(argv)):
            return cls()
    return Adapter()


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
