"""The workers as the master's debug port reaches them: their private endpoints, when they are
read, and the master's /metrics with every worker's series (``_worker_metrics``).

Reads: every scrape of the master's /metrics reads all serving and draining workers at once,
each bounded by ``SCRAPE_TIMEOUT_S`` (a wedged worker costs one timeout and a count in
``swapprof.worker.scrape.errors``, and its last read is served meanwhile); and once more when a
worker reports ``drained`` (``/metrics?final=1``, which the worker answers when it is done with
everything but its telemetry shutdown, and waits for before it exits), so a graceful exit
loses no increment. A SIGKILLed worker loses what it counted since the master last read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from swapprof.server import _contract as c
from swapprof.server._config import ServerConfig
from swapprof.server._rundir import RunDir
from swapprof.server.master._child import DRAINING, READY, SERVING, SWITCHING, Generation
from swapprof.server.master._cohort import Cohort
from swapprof.server.master._worker_http import WorkerUnreachableError, get
from swapprof.server.master._worker_metrics import ProcessKey, WorkerMetrics, merge_families

log = logging.getLogger("swapprof.server")

SCRAPE_TIMEOUT_S = 1.0
MAX_METRICS_BYTES = 32 << 20
SCRAPE_ERRORS = ("timeout", "unreachable", "bad_answer")
READABLE = (READY, SERVING, SWITCHING, DRAINING)  # after drained, only the final read


def key(gen: Generation) -> ProcessKey:
    return (gen.number, gen.worker, gen.pid)


class Fleet:
    def __init__(
        self,
        run_dir: RunDir,
        processes: Callable[[], Iterable[Generation]],
        serving: Callable[[], Cohort | None],
        config: ServerConfig,
    ) -> None:
        self.run_dir = run_dir
        self.processes, self.serving = processes, serving
        self.final_timeout = config.exit_grace  # the worker is SIGKILLed past it anyway
        workers = config.workers
        self.metrics = WorkerMetrics()
        #: (worker index, reason) -> failed reads; every index and reason exists from the start
        self.errors = {(w, reason): 0 for w in range(workers) for reason in SCRAPE_ERRORS}
        self._finals: dict[ProcessKey, asyncio.Task[None]] = {}

    def socket(self, gen: Generation) -> Path:
        return self.run_dir.private_socket(gen.number, gen.worker)

    # -- reads ---------------------------------------------------------------------------------
    async def scrape(self) -> None:
        """Read every serving or draining worker now, in parallel."""
        readable = [g for g in self.processes() if g.alive and g.state in READABLE]
        await asyncio.gather(*(self._read(g, "/metrics", SCRAPE_TIMEOUT_S) for g in readable))
        alive = {key(g) for g in self.processes() if g.alive}
        self.metrics.prune(alive, keep=set(self._finals))
        self.sweep()

    def sweep(self) -> None:
        """Remove the sockets of workers that are gone without removing theirs (SIGKILLed,
        crashed; or left by an earlier master): at most one per live worker stays."""
        live = {self.socket(g).name for g in self.processes() if g.alive}
        directory = self.run_dir.private_socket(0).parent
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            if name.startswith("gen-") and name.endswith(".sock") and name not in live:
                with contextlib.suppress(OSError):
                    os.unlink(directory / name)

    def stage(self, gen: Generation, stage: str) -> None:
        """A worker reported ``stage``: on ``drained``, take its final read."""
        if stage == c.STAGE_READY:
            self.sweep()
        if stage != c.STAGE_DRAINED or key(gen) in self._finals:
            return
        task = asyncio.get_running_loop().create_task(self._final(gen))
        self._finals[key(gen)] = task

    async def _final(self, gen: Generation) -> None:
        try:
            await self._read(gen, "/metrics?final=1", self.final_timeout)
        finally:
            self.metrics.retire(key(gen))
            self._finals.pop(key(gen), None)

    async def _read(self, gen: Generation, target: str, timeout: float) -> None:
        try:
            answer = await get(self.socket(gen), target, timeout, max_bytes=MAX_METRICS_BYTES)
        except WorkerUnreachableError as exc:
            if exc.reason != "absent":  # absent: not up yet (just READY), or telemetry is off
                self._count(gen, exc.reason, str(exc))
            return
        if answer.status == 503:  # its telemetry is not set up yet
            return
        if answer.status != 200:
            self._count(gen, "bad_answer", f"status {answer.status}")
            return
        try:
            from prometheus_client.parser import text_string_to_metric_families

            families = list(text_string_to_metric_families(answer.body.decode("utf-8", "replace")))
        except Exception as exc:  # the parser raises ValueError and others on foreign text
            self._count(gen, "bad_answer", repr(exc))
            return
        self.metrics.update(key(gen), families)

    def _count(self, gen: Generation, reason: str, detail: str) -> None:
        slot = (gen.worker, reason)  # bounded: an index below --workers, a reason of SCRAPE_ERRORS
        self.errors[slot] = self.errors.get(slot, 0) + 1
        log.debug("reading worker %s (pid %s) failed: %s", gen.worker, gen.pid, detail)

    # -- the exposition --------------------------------------------------------------------------
    async def exposition(self) -> bytes:
        """The master's own metrics and every worker's, in the Prometheus text format."""
        await self.scrape()
        from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

        cohort = self.serving()
        workers = self.metrics.families(cohort.number if cohort is not None else None)
        merged = merge_families(REGISTRY.collect(), workers)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(merged))
        return generate_latest(registry)

    async def close(self) -> None:
        for task in list(self._finals.values()):
            task.cancel()
        await asyncio.gather(*self._finals.values(), return_exceptions=True)


class _Families:
    """A collector that yields what it was given (``generate_latest`` wants a registry)."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families
