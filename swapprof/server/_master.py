"""The master: binds the listeners once, spawns generations, orchestrates upgrades.

Lifecycle: ``startup`` (listeners, control socket, signals, first generation READY) ->
``main loop`` (upgrades on SIGHUP or ``ctl upgrade``; stop on SIGTERM/SIGINT or ``ctl stop``)
-> ``shutdown`` (drain every generation, reap, restore signal handlers, remove run files).

Overlapping upgrade requests: while an upgrade runs, further requests coalesce into at most
ONE follow-up upgrade, started when the running one has ended (so it picks up whatever code
changed meanwhile). The follow-up's record counts how many requests it absorbed; every
requester waiting on it gets its outcome. Reason code for absorbed requests: ``coalesced``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from swapprof._errors import ControlError, ListenerError, SwapprofError
from swapprof.server import _fds, _upgrade
from swapprof.server._config import ServerConfig
from swapprof.server._control import MAX_LINE, check_path_length, control_path
from swapprof.server._generation import EXITED, SERVING, STARTING, SWITCHING, Generation
from swapprof.server._notify import Notifier, monotonic_usec
from swapprof.server._observe import telemetry_enabled
from swapprof.server._spawn import SpawnError
from swapprof.server._upgrade import UpgradeRecord

HISTORY = 200
EXIT_GRACE_S = 5.0
SPARE_MIN_LIFE_S = 5.0  # a spare that died sooner is not replaced at once
RECOVERY_BACKOFF_S = 1.0


class StartupError(SwapprofError):
    """The first generation never became ready; the master does not start."""

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = record


class Master:
    def __init__(
        self, config: ServerConfig, *, out: IO[str] | None = None, log: IO[bytes] | None = None
    ) -> None:
        self.config = config
        self.out = out if out is not None else sys.stdout
        self.log = log if log is not None else sys.stderr.buffer
        self.run_dir = Path(config.run_dir).resolve()
        self.listeners: list[socket.socket] = []
        self.names: list[str] = []
        self.addresses: list[str] = []
        self.generations: dict[int, Generation] = {}
        self.serving: Generation | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.forced_kills = 0
        self.coalesced_total = 0
        self.upgrades_total: dict[str, int] = {}
        self._next_generation = 1
        self._next_upgrade = 1
        self._current: UpgradeRecord | None = None
        self._pending: UpgradeRecord | None = None
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._control: asyncio.base_events.Server | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._systemd = Notifier.from_env()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_ns = time.monotonic_ns()
        self._recovery_failures = 0
        self._gens_of: dict[int, tuple[Generation, Generation | None]] = {}
        self.observer: Any = None
        self.debug: Any = None
        self.zygote: Any = None
        self.spare: Any = None  # a generation forked and warmed ahead (zygote mode)
        self.spares: set[Any] = set()  # every spare not yet reaped (waiting, or let go)
        self.strays: Any = None  # zygote mode: reaps children nobody waits for
        self.zygotes: set[Any] = set()  # every zygote started and not yet stopped
        self._replacing: asyncio.Task[None] | None = None
        self._refilling: asyncio.Task[None] | None = None
        self._zygote_serial = 0
        self._reload_serial = 0
        self._lifeline: tuple[int, int] | None = None
        self.ready = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle
    async def run(self) -> int:
        """Serve until stopped; return 0. Raise a SwapprofError if startup fails."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._startup()
            await self._stopping.wait()
        finally:
            await self._shutdown()
        return 0

    async def _startup(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ctl = control_path(self.run_dir)
        check_path_length(ctl)
        if ctl.exists():
            from swapprof.server._control import request

            with contextlib.suppress(ControlError):
                request(self.run_dir, {"cmd": "ping"}, timeout=2.0)
                raise ListenerError(f"a swapprof master already runs in {self.run_dir}")
            ctl.unlink()
        self._take_listeners()
        if telemetry_enabled():
            from swapprof.server._observe import UpgradeObserver

            self.observer = UpgradeObserver(self.run_dir, self)
        if self.config.debug_bind:
            from swapprof.server._debug import DebugServer

            self.debug = DebugServer(self, self.config.debug_bind, token=self.config.debug_token)
            await self.debug.start()
        from swapprof.server._master_control import ControlHandler

        self._control = await asyncio.start_unix_server(ControlHandler(self), path=str(ctl), limit=MAX_LINE)
        os.chmod(ctl, 0o600)
        self._install_signals()
        if self.config.preload:
            from swapprof.server._master_spawn import start_zygote_mode

            await start_zygote_mode(self)
        record = UpgradeRecord(id=0, trigger="startup")
        await self._bring_up(record)
        if record.outcome != _upgrade.SUCCESS:
            raise StartupError(
                f"generation 1 did not become ready: {record.reason} {record.detail}".strip(),
                record.to_dict(),
            )
        self._write_state()
        (self.run_dir / "master.pid").write_text(f"{os.getpid()}\n")
        for address in self.addresses:
            self._say(f"listening on {address}")
        if self.debug is not None:
            self._say(f"debug endpoints (/metrics, /debug/swapprof/upgrades) on http://{self.debug.address}")
        self._say(
            f"master pid {os.getpid()}, generation 1 pid {self.serving.pid if self.serving else '?'} ready "
            f"in {record.to_dict()['time_to_ready_ms']:.0f} ms; run dir {self.run_dir}"
        )
        self._systemd.send(READY=1, STATUS="generation 1 serving", MAINPID=os.getpid())
        self.ready.set()
        self._refill_spare()

    def _spare_exited(self, spare: Any, unexpected: bool) -> None:
        self.spares.discard(spare)
        if self.spare is spare:
            self.spare = None
        if unexpected:
            lived = (time.monotonic_ns() - spare.created_at) / 1e9
            self._say(f"spare pid {spare.pid} died while waiting, after {lived:.1f} s")
            if lived >= SPARE_MIN_LIFE_S and self._current is None:
                self._refill_spare()  # else the next upgrade's end does: no fork loop

    def _known_pids(self) -> set[int]:
        pids = {g.pid for g in self.generations.values() if g.alive}
        pids.update(s.pid for s in self.spares if s.alive)
        pids.update(z.process.pid for z in self.zygotes if z.process.alive)
        return pids

    def _refill_spare(self) -> None:
        """Fork the next spare in the background. Not one of ``_tasks``: cancelled mid-request
        it would leave a spare nobody knows of; the shutdown waits for it instead."""
        if self.zygote is None or not self.config.spare or self._stopping.is_set():
            return
        if self._refilling is None or self._refilling.done():
            from swapprof.server._master_spawn import refill_spare

            self._refilling = asyncio.create_task(refill_spare(self))

    def _take_listeners(self) -> None:
        inherited = _fds.inherit(os.environ)
        if inherited:
            self.names = [name for name, _ in inherited]
            self.listeners = [sock for _, sock in inherited]
        else:
            for spec in self.config.bind_specs():
                sock = _fds.bind(spec)
                self.listeners.append(sock)
                self.names.append("unix" if spec.is_unix else "http")
        self.addresses = [_fds.describe(s) for s in self.listeners]

    def _install_signals(self) -> None:
        assert self._loop is not None
        handlers = {
            signal.SIGHUP: lambda: self.request_upgrade("signal"),
            signal.SIGTERM: self.stop,
            signal.SIGINT: self.stop,
        }
        for signum, handler in handlers.items():
            self._previous_handlers[signum] = signal.getsignal(signum)
            self._loop.add_signal_handler(signum, handler)

    def _restore_signals(self) -> None:
        assert self._loop is not None
        for signum, previous in self._previous_handlers.items():
            self._loop.remove_signal_handler(signum)
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()

    def stop(self) -> None:
        """Begin a graceful stop (safe to call more than once)."""
        self._stopping.set()

    async def _shutdown(self) -> None:
        self._systemd.send(STOPPING=1)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for record in (self._current, self._pending):
            if record is not None and record.done is not None and not record.done.done():
                record.outcome, record.reason = _upgrade.CANCELLED, _upgrade.REASON_STOPPING
                record.done.set_result(record.to_dict())
        alive = [g for g in self.generations.values() if g.alive]
        for gen in alive:
            if gen.state == STARTING:
                gen.kill()
            else:
                gen.signal(signal.SIGTERM)
        deadline = time.monotonic_ns() + int((self.config.drain_timeout + 1.0) * 1e9)
        for gen in alive:
            if not await gen.wait_until(lambda g=gen: not g.alive, deadline):  # type: ignore[misc]
                gen.kill()
                self._forced_kill()
                await gen.wait_until(lambda g=gen: not g.alive, time.monotonic_ns() + int(EXIT_GRACE_S * 1e9))  # type: ignore[misc]
        if self._refilling is not None:
            with contextlib.suppress(Exception):
                await self._refilling  # it drops what it forked, seeing that we stop
        self.spare = None
        for spare in list(self.spares):
            await spare.stop()
        if self.zygote is not None:
            await self.zygote.stop()
            self.zygote = None
        if self.strays is not None:
            self.strays.stop()
            self.strays.grace = 0.0  # everything we own is reaped by now
            self.strays.sweep()  # what exited by now; a later orphan goes to our own parent
        if self._lifeline is not None:
            for fd in self._lifeline:
                os.close(fd)
            self._lifeline = None
        if self.debug is not None:
            await self.debug.close()
        if self.observer is not None:
            await self.observer.close()
        if self._control is not None:
            self._control.close()
            with contextlib.suppress(Exception):
                await self._control.wait_closed()
        if self._previous_handlers:
            self._restore_signals()
        for sock in self.listeners:
            sock.close()
        for name in ("control.sock", "master.pid"):
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / name).unlink()
        for spec in self.config.bind_specs():
            if spec.is_unix and not os.environ.get("LISTEN_FDS"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(spec.path)
        self._write_state(stopped=True)

    # ---------------------------------------------------------------- upgrades
    def request_upgrade(self, trigger: str = "api") -> asyncio.Future[dict[str, Any]]:
        """Ask for an upgrade; the future resolves to its record when it has ended."""
        assert self._loop is not None
        if self._stopping.is_set():
            fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
            fut.set_result({"outcome": _upgrade.CANCELLED, "reason": _upgrade.REASON_STOPPING})
            return fut
        if self._current is None:
            record = self._new_record(trigger)
            self._start(record)
            assert record.done is not None
            return record.done
        if self._pending is None:
            self._pending = self._new_record(trigger)
        else:
            self._pending.coalesced += 1
            self.coalesced_total += 1
            self._count(_upgrade.REASON_COALESCED)
            if self.observer is not None:
                self.observer.coalesced_request()
        assert self._pending.done is not None
        return self._pending.done

    def _new_record(self, trigger: str) -> UpgradeRecord:
        assert self._loop is not None
        record = UpgradeRecord(id=self._next_upgrade, trigger=trigger)
        self._next_upgrade += 1
        record.done = self._loop.create_future()
        if self.observer is not None:
            self.observer.begin(record)
        return record

    def _start(self, record: UpgradeRecord) -> None:
        self._current = record
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
        new, old = self._gens_of.pop(record.id, (None, None))
        if self.observer is not None:
            self.observer.finish(record, new, old)
        result = record.to_dict()
        self.history.append(result)
        self._count(f"{record.outcome}:{record.reason}")
        self._append_log(result)
        self._write_state()
        self._current = None
        if record.done is not None and not record.done.done():
            record.done.set_result(result)
        serving = self.serving.number if self.serving else None
        self._say(_summary_line(result))
        if record.trigger == "recovery":
            self._recovery_failures = 0 if record.outcome == _upgrade.SUCCESS else self._recovery_failures + 1
        self._systemd.send(READY=1, STATUS=f"generation {serving} serving")
        if self._pending is not None and not self._stopping.is_set():
            pending, self._pending = self._pending, None
            self._start(pending)  # its own end refills the spare: no fork racing its start-up
            return
        self._refill_spare()
        if (self.serving is None or not self.serving.alive) and not self._stopping.is_set():
            self._schedule_recovery()

    def _forced_kill(self) -> None:
        self.forced_kills += 1
        if self.observer is not None:
            self.observer.forced_kill()

    def _count(self, key: str) -> None:
        self.upgrades_total[key] = self.upgrades_total.get(key, 0) + 1

    async def _bring_up(self, record: UpgradeRecord) -> None:
        """Spawn a new generation; on READY switch from the old one, otherwise roll back."""
        old = self.serving
        cfg = self.config
        spawn_at = record.mark("spawn_begin")
        number = self._next_generation
        self._next_generation += 1
        new = Generation(number, asyncio.get_running_loop(), self.log, on_exit=self._on_exit)
        record.new_generation = number
        if old is not None:
            record.old_generation, record.old_pid = old.number, old.pid
        self._gens_of[record.id] = (new, old)
        env = self._child_env()
        if self.observer is not None:
            env = self.observer.child_env(record, env)
        try:
            spawn_at = await self._spawn(record, new, env, spawn_at)
        except (SpawnError, OSError) as exc:
            record.phase("rollback", spawn_at, time.monotonic_ns())
            record.mark("ended")
            record.outcome, record.reason, record.detail = (
                _upgrade.ROLLED_BACK,
                _upgrade.REASON_SPAWN_FAILED,
                str(exc),
            )
            return
        self.generations[number] = new
        record.new_pid = new.pid
        deadline = spawn_at + int(cfg.ready_timeout * 1e9)
        ok = await new.wait_until(
            lambda: "ready" in new.stages or not new.alive or new.failure is not None, deadline
        )
        stages = new.stages
        if "started" in stages:
            record.phase("spawn", spawn_at, stages["started"])
            if "imported" in stages:
                record.phase("import", stages["started"], stages["imported"])
                if "ready" in stages:
                    record.phase("ready", stages["imported"], stages["ready"])
        if not ok or "ready" not in stages or not new.alive:
            await self._rollback(record, new, timed_out=not ok)
            return
        ready_at = record.mark("new_ready", stages["ready"])
        record.info["probe_attempts"] = int(new.info.get("probe_attempts", "0") or 0)
        record.info["new_fds"] = new.open_fds()
        new.state = SERVING
        self.serving = new
        if old is not None and old.alive:
            await self._retire(record, old, ready_at)
        record.outcome, record.reason = _upgrade.SUCCESS, _upgrade.REASON_OK
        record.mark("ended")
        self._prune()

    async def _spawn(self, record: UpgradeRecord, new: Generation, env: dict[str, str], spawn_at: int) -> int:
        """Start ``new`` (fork of the zygote, else exec); see ``_master_spawn.spawn``."""
        from swapprof.server._master_spawn import spawn

        return await spawn(self, record, new, env, spawn_at)

    def _tasks_add(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` as one of the tasks the shutdown cancels."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _rollback(self, record: UpgradeRecord, new: Generation, timed_out: bool) -> None:
        failed_at = time.monotonic_ns()
        if new.failure is not None:
            reason = {
                "import_error": _upgrade.REASON_IMPORT_ERROR,
                "probe_failed": _upgrade.REASON_PROBE_FAILED,
                "lifespan_failed": _upgrade.REASON_LIFESPAN_FAILED,
            }.get(new.failure, new.failure)
            detail = new.info.get("status", "")
        elif timed_out:
            reason, detail = (
                _upgrade.REASON_READY_TIMEOUT,
                f"not READY within {self.config.ready_timeout:g} s",
            )
        elif new.exit_signal is not None:
            reason, detail = _upgrade.REASON_CRASHED, new.describe_exit()
        else:
            reason, detail = _upgrade.REASON_EXITED, new.describe_exit()
        if new.alive:
            new.kill()
            await new.wait_until(lambda: not new.alive, time.monotonic_ns() + int(EXIT_GRACE_S * 1e9))
        record.phase("rollback", failed_at, time.monotonic_ns())
        record.outcome, record.reason, record.detail = _upgrade.ROLLED_BACK, reason, detail
        record.tail = list(new.tail)
        record.mark("ended")
        self._prune()

    async def _retire(self, record: UpgradeRecord, old: Generation, ready_at: int) -> None:
        """Switch: tell the old generation to stop accepting, wait for its drain and exit."""
        cfg = self.config
        if self.observer is not None:
            self.observer.hand_to_old(record, old, ready_at)
        old.signal(signal.SIGTERM)
        if old.state == SERVING:
            old.state = SWITCHING
        # One budget for switch + drain: an old generation whose event loop is blocked cannot
        # even stop accepting, and must not hold the upgrade longer than --drain-timeout.
        signalled = time.monotonic_ns()
        deadline = signalled + int((cfg.drain_timeout + 1.0) * 1e9)
        switched = await old.wait_until(lambda: "stopped_accepting" in old.stages or not old.alive, deadline)
        stopped = old.stages.get("stopped_accepting", old.exited_at or time.monotonic_ns())
        if not switched:
            stopped = time.monotonic_ns()  # it never said so; from now on it is killed anyway
        record.mark("old_stopped_accepting", stopped)
        record.phase("switch", ready_at, stopped)
        record.info["connections_at_switch"] = int(old.info.get("connections", old.connections) or 0)
        drained = switched and await old.wait_until(
            lambda: "drained" in old.stages or not old.alive, deadline
        )
        if not drained:
            old.kill()
            self._forced_kill()
            record.info["forced_kill"] = True
        await old.wait_until(lambda: not old.alive, time.monotonic_ns() + int(EXIT_GRACE_S * 1e9))
        if old.alive:  # ignored even SIGKILL's grace: count it and move on
            old.kill()
            self._forced_kill()
            record.info["forced_kill"] = True
            await old.wait_until(lambda: not old.alive, time.monotonic_ns() + int(EXIT_GRACE_S * 1e9))
        drained_at = old.stages.get("drained", old.exited_at or time.monotonic_ns())
        record.phase("drain", stopped, drained_at)
        record.phase("exit", drained_at, old.exited_at or time.monotonic_ns())
        record.info["closed_idle"] = int(old.info.get("closed_idle", "0") or 0)
        record.info["old_exit"] = old.describe_exit()

    def _prune(self) -> None:
        for number in [n for n, g in self.generations.items() if g.state == EXITED]:
            del self.generations[number]

    def _on_exit(self, gen: Generation) -> None:
        """A generation's process ended; replace the serving one if it died on its own."""
        if gen is self.serving and self._current is None and not self._stopping.is_set():
            self._say(
                f"generation {gen.number} (pid {gen.pid}) {gen.describe_exit()} while serving; starting a replacement"
            )
            self._schedule_recovery()

    def _schedule_recovery(self) -> None:
        """Start a recovery upgrade, spaced by a growing backoff while recoveries keep failing."""
        assert self._loop is not None
        delay = min(RECOVERY_BACKOFF_S * (2**self._recovery_failures) - RECOVERY_BACKOFF_S, 30.0)
        self._loop.call_later(delay, self._recover)

    def _recover(self) -> None:
        if self._stopping.is_set() or (self.serving is not None and self.serving.alive):
            return
        if self._current is None and self._pending is None:
            self.request_upgrade("recovery")

    # ---------------------------------------------------------------- children
    def _argv(self) -> list[str]:
        return [self.config.python, "-m", "swapprof.server._worker"]

    def _child_env(self) -> dict[str, str]:
        cfg = self.config
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_") and k != "NOTIFY_SOCKET"}
        env.update(
            SWAPPROF_APP=cfg.app,
            SWAPPROF_READY_TIMEOUT=str(cfg.ready_timeout),
            SWAPPROF_DRAIN_TIMEOUT=str(cfg.drain_timeout),
            SWAPPROF_DRAIN_GRACE=str(cfg.drain_grace),
            SWAPPROF_RUN_DIR=str(self.run_dir),
            SWAPPROF_MASTER_PID=str(os.getpid()),
            PYTHONUNBUFFERED="1",
        )
        if cfg.app_dir:
            env["SWAPPROF_APP_DIR"] = str(Path(cfg.app_dir).resolve())
        if cfg.probe_path:
            env["SWAPPROF_PROBE_PATH"] = cfg.probe_path
        env["SWAPPROF_APP_METRICS_PATH"] = cfg.app_metrics_path
        if cfg.debug_token:
            env["SWAPPROF_DEBUG_TOKEN"] = cfg.debug_token
        return env

    # ---------------------------------------------------------------- reporting
    def status(self) -> dict[str, Any]:
        return {
            "master_pid": os.getpid(),
            "uptime_s": round((time.monotonic_ns() - self._started_ns) / 1e9, 3),
            "addresses": self.addresses,
            "run_dir": str(self.run_dir),
            "serving_generation": self.serving.number if self.serving else None,
            "generations": [g.snapshot() for g in sorted(self.generations.values(), key=lambda g: g.number)],
            "upgrade_in_progress": self._current.id if self._current else None,
            "upgrade_pending": self._pending is not None,
            "upgrades_total": dict(self.upgrades_total),
            "coalesced_total": self.coalesced_total,
            "forced_kills": self.forced_kills,
            "master_fds": len(os.listdir("/proc/self/fd")),
            "debug_address": self.debug.address if self.debug is not None else None,
            "zygote": {
                "serial": self.zygote.serial,
                "pid": self.zygote.process.pid,
                "spare_pid": self.spare.pid if self.spare is not None and self.spare.waiting else None,
            }
            if self.zygote
            else None,
            "last_upgrade": self.history[-1] if self.history else None,
        }

    def _write_state(self, stopped: bool = False) -> None:
        state = {
            "master_pid": os.getpid(),
            "addresses": self.addresses,
            "control_socket": str(control_path(self.run_dir)),
            "serving_generation": self.serving.number if self.serving else None,
            "serving_pid": self.serving.pid if self.serving else None,
            "debug_address": self.debug.address if self.debug is not None else None,
            "stopped": stopped,
        }
        tmp = self.run_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.run_dir / "state.json")

    def _append_log(self, record: dict[str, Any]) -> None:
        with contextlib.suppress(OSError), open(self.run_dir / "upgrades.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"swapprof: {text}", file=self.out, flush=True)


def _summary_line(record: dict[str, Any]) -> str:
    phases = " ".join(f"{name}={ms:.1f}ms" for name, ms in record["phases_ms"].items())
    head = f"upgrade {record['id']} ({record['trigger']}): {record['outcome']}"
    if record["outcome"] != _upgrade.SUCCESS:
        head += f" [{record['reason']}: {record['detail']}]"
    gens = f"gen {record['old_generation']} -> {record['new_generation']}"
    return f"{head}, {gens}, {phases}"


async def serve(config: ServerConfig) -> int:
    """Run a master until it is stopped (the body of ``swapprof serve``)."""
    return await Master(config).run()
