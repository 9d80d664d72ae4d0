"""A serving generation until it is told to go: serve, be parked for a bake, resume, retire.

Without a bake window this is what it always was: serve until SIGTERM, then stop accepting,
drain, say ``drained``. With one (``SWAPPROF_BAKE_WINDOW`` > 0) the master retires the old
generation in two steps. ``SIGNAL_PARK`` (SIGUSR2): stop accepting and drain exactly as on
SIGTERM, but keep a copy of every listener and the app loaded, and say ``parked``, not
``drained``. Then either ``SIGNAL_RESUME`` (the bake failed): accept again on the same sockets
at once, even mid-drain, and say ``resumed``; or SIGTERM (the bake passed): say ``drained`` and
exit as usual. Every ``INTERVAL_S`` with requests the interval's accounting is shipped, and once
more right before it stops accepting, so the master has the old generation's last window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from swapprof._vocabulary import DRAIN, SWITCH
from swapprof.server import _contract as c
from swapprof.server._accounting import INTERVAL_S, Interval
from swapprof.server._contract import GenerationContract
from swapprof.server._notify import Notifier


@dataclass
class Retired:
    """CLOCK_MONOTONIC stamps of the retirement, for the exit path's spans."""

    term: int  # told to go (or to park)
    stopped: int
    drained: int
    exit_from: int  # told to exit (after a park: the second signal)
    counts: dict[str, int] = field(default_factory=dict)


async def serve_until_stopped(
    server: Any, contract: GenerationContract, notifier: Notifier, stop: asyncio.Event, telemetry: Any
) -> Retired:
    """Serve until ``stop``; park and resume as the master says (module docstring)."""
    loop = asyncio.get_running_loop()
    park, resume = asyncio.Event(), asyncio.Event()
    shipper = None
    if contract.bake_window > 0:
        interval = server.middleware.requests = Interval()
        shipper = asyncio.create_task(_ship(interval, notifier))
        loop.add_signal_handler(c.SIGNAL_PARK, park.set)
        loop.add_signal_handler(c.SIGNAL_RESUME, resume.set)
    try:
        while True:
            resume.clear()
            await _first(stop.wait(), park.wait())
            term = time.monotonic_ns()
            _flush(server, notifier)
            if stop.is_set():
                return await _retire(server, contract, notifier, term)
            park.clear()
            await server.park()
            stopped = time.monotonic_ns()
            _say_stopped(server, notifier, stopped)
            draining = asyncio.ensure_future(server.drain(contract.drain_grace, contract.drain_timeout))
            await _first(stop.wait(), resume.wait(), draining)
            parked = 0
            if draining.done() and not resume.is_set():
                counts: dict[str, int] = draining.result()
                parked = time.monotonic_ns()
                notifier.send(**{c.F_STAGE: c.STAGE_PARKED, c.F_T: parked}, **_fields(counts))
                await _first(stop.wait(), resume.wait())
            if resume.is_set() and not stop.is_set():
                draining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await draining
                await server.resume()
                notifier.send(**{c.F_STAGE: c.STAGE_RESUMED, c.F_T: time.monotonic_ns()})
                loop.run_in_executor(None, _record_parking, telemetry, term, stopped)
                continue
            counts = await draining  # stopped while parked (or still draining): the drain's end
            told = time.monotonic_ns()
            notifier.send(**{c.F_STAGE: c.STAGE_DRAINED, c.F_T: parked or told}, **_fields(counts))
            return Retired(term, stopped, parked or told, told, counts)
    finally:
        if shipper is not None:
            shipper.cancel()
            for signum in (c.SIGNAL_PARK, c.SIGNAL_RESUME):
                loop.remove_signal_handler(signum)


async def _retire(server: Any, contract: GenerationContract, notifier: Notifier, term: int) -> Retired:
    await server.stop_accepting()
    stopped = time.monotonic_ns()
    _say_stopped(server, notifier, stopped)
    counts = await server.drain(contract.drain_grace, contract.drain_timeout)
    drained = time.monotonic_ns()
    notifier.send(**{c.F_STAGE: c.STAGE_DRAINED, c.F_T: drained}, **_fields(counts))
    return Retired(term, stopped, drained, drained, counts)


def _say_stopped(server: Any, notifier: Notifier, stopped: int) -> None:
    notifier.send(
        **{c.F_STAGE: c.STAGE_STOPPED_ACCEPTING, c.F_T: stopped, c.F_CONNECTIONS: server.connections}
    )


def _fields(counts: dict[str, int]) -> dict[str, int]:
    return {f"{c.F_PREFIX}{key.upper()}": value for key, value in counts.items()}


def _flush(server: Any, notifier: Notifier) -> None:
    interval = server.middleware.requests
    if interval is not None and interval.requests:
        notifier.send(**{c.F_REQUESTS: interval.take(time.monotonic_ns())})


async def _ship(interval: Interval, notifier: Notifier) -> None:
    while True:
        await asyncio.sleep(INTERVAL_S)
        if interval.requests:
            notifier.send(**{c.F_REQUESTS: interval.take(time.monotonic_ns())})


async def _first(*waits: Any) -> None:
    """Wait until the first of ``waits`` (coroutines or futures) is done; cancel the others
    (a future passed in is left running)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task, given in zip(tasks, waits, strict=True):
            if task is not given:
                task.cancel()


def _record_parking(telemetry: Any, term: int, stopped: int) -> None:
    """After a resume: this generation's switch and drain spans of the upgrade that parked it
    (the drain ended when it resumed)."""
    traceparent, ready_ns = telemetry.handoff()
    now = time.monotonic_ns()
    telemetry.record(traceparent, [(SWITCH, ready_ns or term, stopped, None), (DRAIN, stopped, now, None)])
