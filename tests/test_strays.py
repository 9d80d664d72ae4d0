"""StrayReaper: children nobody waits for are reaped after a grace period, known ones never."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from swapprof._process import children
from swapprof.server.master._strays import StrayReaper
from tests._helpers import wait_for


def _exited_child() -> int:
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], os.environ)
    wait_for(lambda: _state(pid) == "Z", what="the child to exit")
    return pid


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_unknown_zombies_are_reaped_after_the_grace_known_ones_are_not() -> None:
    stray, known = _exited_child(), _exited_child()
    said: list[str] = []
    try:
        assert {stray, known} <= children()
        loop = asyncio.new_event_loop()
        try:
            reaper = StrayReaper(loop, lambda: {known}, said.append, grace=3600)
            reaper.sweep()
            assert _state(stray) == "Z"  # unknown, but not for long enough yet
            reaper.grace = 0
            reaper.sweep()
        finally:
            loop.close()
        assert _state(stray) == "gone" and _state(known) == "Z"
        assert reaper.reaped == 1 and f"reaped pid {stray}" in said[0]
    finally:
        for pid in (stray, known):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
