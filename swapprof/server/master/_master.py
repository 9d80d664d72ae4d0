"""The master: binds the listeners once, spawns generations, orchestrates upgrades.

Lifecycle: ``startup`` (listeners, control socket, signals, first generation READY) ->
``main loop`` (upgrades on SIGHUP or ``ctl upgrade``; stop on SIGTERM/SIGINT or ``ctl stop``)
-> ``shutdown`` (drain every generation, reap, restore signal handlers, remove run files).

Overlapping upgrade requests coalesce: see ``_queue``. A generation is a ``Cohort`` of
``--workers`` processes; one that dies alone is replaced alone (``_restarts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from swapprof._errors import StartupError
from swapprof._vocabulary import (
    REASON_COALESCED,
    REQUESTED,
    SUCCESS,
    TRIGGER_API,
    TRIGGER_RECOVERY,
    TRIGGER_SIGNAL,
    TRIGGER_STARTUP,
)
from swapprof.server import _fds
from swapprof.server._config import ServerConfig
from swapprof.server._contract import ENV_LISTEN_FDS, telemetry_enabled
from swapprof.server._notify import Notifier, monotonic_usec
from swapprof.server._rundir import RunDir
from swapprof.server.master._child import EXITED, Generation, stop_all
from swapprof.server.master._cohort import Cohort
from swapprof.server.master._queue import UpgradeQueue
from swapprof.server.master._record import UpgradeRecord, summary_line
from swapprof.server.master._restarts import WorkerRestarts
from swapprof.server.master._signals import LoopSignals
from swapprof.server.master._upgrade import Lend, Upgrade

if TYPE_CHECKING:
    from swapprof.server.master._debug import DebugServer
    from swapprof.server.master._exec_forks import ExecForks
    from swapprof.server.master._telemetry import UpgradeObserver
    from swapprof.server.master._zygotes import ZygotePool

log = logging.getLogger("swapprof.server")

HISTORY = 200


class Master:
    def __init__(
        self, config: ServerConfig, *, out: IO[str] | None = None, log: IO[bytes] | None = None
    ) -> None:
        self.config = config
        self.out = out if out is not None else sys.stdout
        self.log = log if log is not None else sys.stderr.buffer
        self.run_dir = RunDir(config.run_dir)
        self.listeners: list[socket.socket] = []
        self.names: list[str] = []
        self.addresses: list[str] = []
        self.generations: dict[int, Cohort] = {}
        self.serving: Cohort | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.forced_kills = 0
        self.upgrades_total: dict[str, int] = {}
        self.write_errors = 0
        self.observer: UpgradeObserver | None = None
        self.debug: DebugServer | None = None
        self.zygotes: ZygotePool | ExecForks | None = None  # ExecForks: N exec'd workers, one import
        self.ready = asyncio.Event()
        self._next_generation = 1
        self.queue: UpgradeQueue | None = None
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._control: asyncio.base_events.Server | None = None
        self._signals: LoopSignals | None = None
        self._systemd = Notifier.from_env()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_ns = time.monotonic_ns()
        self._gens_of: dict[int, tuple[Cohort, Cohort | None]] = {}
        self.restarts: WorkerRestarts | None = None

    @property
    def current(self) -> UpgradeRecord | None:
        """The upgrade running now, if any."""
        return self.queue.current if self.queue is not None else None

    def processes(self) -> Iterator[Generation]:
        """Every worker process of every generation the master tracks."""
        for cohort in list(self.generations.values()):
            yield from cohort

    # ---------------------------------------------------------------- lifecycle
    async def run(self) -> int:
        """Serve until stopped; return 0. Raise a SwapprofError if startup fails."""
        self._loop = asyncio.get_running_loop()
        self.restarts = WorkerRestarts(
            self._loop,
            spawn=self._spawn_worker,
            serving=lambda: self.serving,
            busy=lambda: self.current is not None,
            stopping=self._stopping.is_set,
            counted=lambda: self.observer.worker_restart() if self.observer is not None else None,
            recover=lambda: self.request_upgrade(TRIGGER_RECOVERY),
            idle=lambda: self.queue is not None and self.queue.idle,
            ready_timeout=self.config.ready_timeout,
            say=self.say,
            run_task=self._tasks_add,
        )
        self.queue = UpgradeQueue(
            self._loop, self._start, begin=self._observer_begin, absorbed=self._absorbed
        )
        try:
            await self._startup()
            await self._stopping.wait()
        finally:
            await self._shutdown()
        return 0

    async def _startup(self) -> None:
        self.run_dir.create()
        from swapprof.server.master._control_server import ControlHandler, claim_control_socket

        claim_control_socket(self.run_dir)
        self._take_listeners()
        if telemetry_enabled():
            from swapprof.server.master._telemetry import UpgradeObserver

            self.observer = UpgradeObserver(
                self.run_dir, serving=lambda: self.serving, generations=self.processes
            )
        if self.config.debug_bind:
            from swapprof.server.master._debug import DebugServer
            from swapprof.server.master._fleet import Fleet

            fleet = Fleet(self.run_dir, self.processes, lambda: self.serving, self.config)
            if self.observer is not None:
                self.observer.count_scrape_errors(fleet.errors)
            history, bind, token = lambda: list(self.history), self.config.debug_bind, self.config.debug_token
            self.debug = DebugServer(history, self.status, bind, token=token, fleet=fleet)
            await self.debug.start()
        self._control = await ControlHandler(self).serve(self.run_dir)
        self._install_signals()
        if self.config.preload or (self.config.workers > 1 and self.config.fork_workers):
            await self._start_zygotes()
        record = UpgradeRecord(id=0, trigger=TRIGGER_STARTUP)
        await self._bring_up(record)
        if record.outcome != SUCCESS:
            raise StartupError(
                f"generation 1 did not become ready: {record.reason} {record.detail}".strip(),
                record.to_dict(),
            )
        self._write_state()
        self.run_dir.write_pid()
        for address in self.addresses:
            self.say(f"listening on {address}")
        if self.debug is not None:
            self.say(f"debug endpoints (/metrics, /debug/swapprof/upgrades) on http://{self.debug.address}")
        pids = ", ".join(map(str, self.serving.pids)) if self.serving else "?"
        self.say(
            f"master pid {os.getpid()}, generation 1 pid {pids} ready "
            f"in {record.to_dict()['time_to_ready_ms']:.0f} ms; run dir {self.run_dir.path}"
        )
        self._systemd.send(READY=1, STATUS="generation 1 serving", MAINPID=os.getpid())
        self.ready.set()
        self._refill_spare()

    async def _start_zygotes(self) -> None:
        from swapprof.server.master._exec_forks import ExecForks
        from swapprof.server.master._zygotes import ZygotePool

        assert self._loop is not None
        self.zygotes = (ZygotePool if self.config.preload else ExecForks)(
            self._loop,
            self.log,
            config=self.config,
            run_dir=self.run_dir,
            observer=self.observer,
            listeners=self.listeners,
            names=self.names,
            say=self.say,
            child_env=self._child_env,
            known_pids=lambda: {g.pid for g in self.processes() if g.alive},
            busy=lambda: self.current is not None,
            stopping=self._stopping.is_set,
            run_task=self._tasks_add,
        )
        await self.zygotes.start()

    def _refill_spare(self) -> None:
        if self.zygotes is not None:
            self.zygotes.refill()

    def _take_listeners(self) -> None:
        self.listeners, self.names = _fds.take(self.config.bind_specs(), os.environ)
        self.addresses = [_fds.describe(s) for s in self.listeners]

    def _install_signals(self) -> None:
        assert self._loop is not None
        self._signals = LoopSignals(self._loop)
        self._signals.install(
            {
                signal.SIGHUP: lambda: self.request_upgrade(TRIGGER_SIGNAL),
                signal.SIGTERM: self.stop,
                signal.SIGINT: self.stop,
            }
        )

    def stop(self) -> None:
        """Begin a graceful stop (safe to call more than once)."""
        self._stopping.set()
        if self.queue is not None:
            self.queue.stopping = True

    async def _shutdown(self) -> None:
        self._systemd.send(STOPPING=1)
        if self.restarts is not None:
            self.restarts.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.queue is not None:
            self.queue.cancel()
        await self._stop_generations()
        if self.zygotes is not None:
            await self.zygotes.stop()
        if self.debug is not None:
            await self.debug.close()
        if self.observer is not None:
            await self.observer.close()
        if self._control is not None:
            self._control.close()
            with contextlib.suppress(Exception):
                await self._control.wait_closed()
        if self._signals is not None:
            self._signals.restore()
        for sock in self.listeners:
            sock.close()
        self.run_dir.remove_master_files()
        for spec in self.config.bind_specs():
            if spec.is_unix and not os.environ.get(ENV_LISTEN_FDS):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(spec.path)
        self._write_state(stopped=True)

    async def _stop_generations(self) -> None:
        """SIGTERM every live generation (SIGKILL one still starting); kill what outlasts the drain."""
        for _ in range(await stop_all(list(self.processes()), self.config.drain_timeout + 1.0)):
            self._forced_kill()

    # ---------------------------------------------------------------- upgrades
    def request_upgrade(self, trigger: str = TRIGGER_API) -> asyncio.Future[dict[str, Any]]:
        """Ask for an upgrade; the future resolves to its record when it has ended."""
        assert self.queue is not None
        return self.queue.request(trigger)

    def _observer_begin(self, record: UpgradeRecord) -> None:
        if self.observer is not None:
            self.observer.begin(record)

    def _absorbed(self) -> None:
        self._count(REASON_COALESCED)
        if self.observer is not None:
            self.observer.coalesced_request()

    def _start(self, record: UpgradeRecord) -> None:
        self._systemd.send(
            RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS=f"upgrade {record.id} running"
        )
        self._tasks_add(self._run_upgrade(record))

    async def _run_upgrade(self, record: UpgradeRecord) -> None:
        try:
            await self._bring_up(record)
        finally:
            self._finish(record)

    def _finish(self, record: UpgradeRecord) -> None:
        """End ``record``: whatever fails here (a full disk, no fds), the upgrade ends, its
        waiters get their answer and the next one may start."""
        new, old = self._gens_of.pop(record.id, (None, None))
        result = record.to_dict()
        self.history.append(result)
        self._count(f"{record.outcome}:{record.reason}")
        try:
            if self.observer is not None:
                self.observer.finish(record, new, old)
        except Exception:
            log.warning("cannot record upgrade %s in telemetry", record.id, exc_info=True)
        self._try_write("upgrades.jsonl", lambda: self.run_dir.append_upgrade(result))
        self._write_state()
        serving = self.serving.number if self.serving else None
        self.say(summary_line(result))
        assert self.restarts is not None
        self.restarts.upgrade_ended(record.trigger, record.outcome == SUCCESS)
        self._systemd.send(READY=1, STATUS=f"generation {serving} serving")
        assert self.queue is not None
        if self.queue.ended(record, result):
            return  # the follow-up's own end refills the spare: no fork racing its start-up
        self._refill_spare()
        self.restarts.settle()  # recovery, or a worker that died during the upgrade replaced

    def _forced_kill(self) -> None:
        self.forced_kills += 1
        if self.observer is not None:
            self.observer.forced_kill()

    def _count(self, key: str) -> None:
        self.upgrades_total[key] = self.upgrades_total.get(key, 0) + 1

    async def _bring_up(self, record: UpgradeRecord) -> None:
        """Run one upgrade (see ``_upgrade.Upgrade``) from the serving generation to a new one."""
        old = self.serving
        number = self._next_generation
        self._next_generation += 1
        assert self._loop is not None
        new = Cohort(
            number,
            self.config.workers,
            self._loop,
            self.log,
            on_exit=self.restarts.exited if self.restarts else None,
            on_stage=self._on_stage,
        )
        self._gens_of[record.id] = (new, old)
        env = self._child_env()
        if self.observer is not None:
            env = self.observer.child_env(record, env)
        lend = Lend(
            spawn=self._spawn,
            adopt=lambda cohort: self.generations.__setitem__(cohort.number, cohort),
            promote=self._promote,
            hand_to_old=self.observer.hand_to_old if self.observer is not None else lambda *_: None,
            forced_kill=self._forced_kill,
        )
        try:
            await Upgrade(record, self.config, lend).run(new, old, env)
        finally:
            self._prune()

    def _on_stage(self, gen: Generation, stage: str) -> None:
        for hook in (h for h in (self.debug, self.zygotes) if h is not None):  # last reads; learning
            hook.stage(gen, stage)

    def _promote(self, cohort: Cohort) -> None:
        self.serving = cohort

    async def _spawn_worker(self, gen: Generation) -> None:
        """Start a replacement worker (no upgrade: a scratch record nobody keeps)."""
        await self._spawn(
            UpgradeRecord(id=0, trigger=TRIGGER_RECOVERY), gen, self._child_env(), time.monotonic_ns()
        )
        self._refill_spare()

    async def _spawn(self, record: UpgradeRecord, new: Generation, env: dict[str, str], spawn_at: int) -> int:
        """Start ``new``: a fork of the zygote when there is a healthy one, else exec."""
        record.info["spawn_mode"] = "exec"
        if self.zygotes is not None:
            forked_at = await self.zygotes.fork(record, new, env, spawn_at)
            if forked_at is not None:
                return forked_at
        if REQUESTED not in {name for name, _, _ in record.spans}:
            record.phase(REQUESTED, record.requested_ns, spawn_at)
        new.start([self.config.python, "-m", "swapprof.server.generation"], env, self.listeners, self.names)
        return spawn_at

    def _tasks_add(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` as one of the tasks the shutdown cancels."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _prune(self) -> None:
        for number, cohort in list(self.generations.items()):
            if cohort is not self.serving and all(w.state == EXITED or not w.pid for w in cohort):
                del self.generations[number]

    # ---------------------------------------------------------------- children
    def _child_env(self) -> dict[str, str]:
        return self.config.contract(str(self.run_dir.path), os.getpid()).to_env()

    # ---------------------------------------------------------------- reporting
    def status(self) -> dict[str, Any]:
        return {
            "master_pid": os.getpid(),
            "uptime_s": round((time.monotonic_ns() - self._started_ns) / 1e9, 3),
            "addresses": self.addresses,
            "run_dir": str(self.run_dir.path),
            "serving_generation": self.serving.number if self.serving else None,
            "workers": self.config.workers,
            "generations": [
                g.snapshot() for g in sorted(self.processes(), key=lambda g: (g.number, g.worker))
            ],
            "worker_restarts": self.restarts.total if self.restarts is not None else 0,
            "upgrade_in_progress": self.current.id if self.current else None,
            "upgrade_pending": self.queue is not None and self.queue.pending is not None,
            "upgrades_total": dict(self.upgrades_total),
            "coalesced_total": self.queue.coalesced_total if self.queue is not None else 0,
            "forced_kills": self.forced_kills,
            "run_dir_write_errors": self.write_errors,
            "master_fds": len(os.listdir("/proc/self/fd")),
            "debug_address": self.debug.address if self.debug is not None else None,
            "zygote": self.zygotes.status() if self.zygotes is not None else None,
            "last_upgrade": self.history[-1] if self.history else None,
        }

    def _write_state(self, stopped: bool = False) -> None:
        state = {
            "master_pid": os.getpid(),
            "addresses": self.addresses,
            "control_socket": str(self.run_dir.control),
            "serving_generation": self.serving.number if self.serving else None,
            "serving_pid": self.serving.workers[0].pid if self.serving else None,
            "serving_pids": self.serving.pids if self.serving else [],
            "worker_restarts": self.restarts.total if self.restarts is not None else 0,
            "debug_address": self.debug.address if self.debug is not None else None,
            "stopped": stopped,
        }
        self._try_write("state.json", lambda: self.run_dir.write_state(state))

    def _try_write(self, what: str, write: Any) -> None:
        """Run-dir writes never stop the master: a failure (ENOSPC, EMFILE) is counted and said."""
        try:
            write()
        except OSError as exc:
            self.write_errors += 1
            if self.observer is not None:
                self.observer.write_error()
            self.say(f"cannot write {what} in {self.run_dir.path}: {exc}")

    def say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"swapprof: {text}", file=self.out, flush=True)


async def serve(config: ServerConfig) -> int:
    """Run a master until it is stopped (the body of ``swapprof serve``)."""
    return await Master(config).run()
