"""One worker process of a generation as the master sees it: its process, notify socket, output
and stages. A generation of N workers is N of these with one number (``_cohort.Cohort``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from swapprof.server import _contract as c
from swapprof.server import _notify
from swapprof.server._accounting import Ledger
from swapprof.server.master._spawn import Spawned, spawn

TAIL_LINES = 40
REPARENT_TRIES, REPARENT_WAIT_S = 500, 0.01  # a fork's exit seen before it became our child

# Generation states, as `swapprof ctl status` shows them.
# "switching": told to stop accepting, not yet confirmed; "draining": it confirmed (its
# listeners are closed) and finishes the connections it holds; "parked": drained, alive, not
# accepting, waiting for a bake's verdict (resumed to "serving", or told to exit).
STARTING, READY, SERVING, SWITCHING, DRAINING, PARKED, EXITING, EXITED = (
    "starting",
    "ready",
    "serving",
    "switching",
    "draining",
    "parked",
    "exiting",
    "exited",
)
_PARKING_STAGES = (c.STAGE_STOPPED_ACCEPTING, c.STAGE_PARKED, c.STAGE_DRAINED, c.STAGE_RESUMED)


class OutputTee:
    """A child's output pipe copied to the log line by line, as ``[label] text``, keeping the
    last ``keep`` lines (the tail a failed upgrade reports)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, log: IO[bytes] | None, label: str, keep: int = TAIL_LINES
    ) -> None:
        self.loop = loop
        self.log = log
        self.label = label
        self.tail: collections.deque[str] = collections.deque(maxlen=keep)
        self._partial = b""

    def read(self, fd: int) -> None:
        """Read what ``fd`` has now; at EOF, stop watching it and flush a last partial line."""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.loop.remove_reader(fd)
                if self._partial:
                    self._line(self._partial)
                    self._partial = b""
                return
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                self._line(line)

    def _line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        self.tail.append(text)
        if self.log is not None:
            with contextlib.suppress(OSError, ValueError):
                self.log.write(f"[{self.label}] {text}\n".encode())
                self.log.flush()


class Generation:
    """One spawned process of a generation (worker ``worker`` of generation ``number``). All
    methods run on the master's event loop thread. ``changed``: an event shared by the workers
    of one generation, set whenever any of them reports or exits. ``on_stage``: called with
    each stage the process reports, once per stage (``imports``, a report, each time)."""

    def __init__(
        self,
        number: int,
        loop: asyncio.AbstractEventLoop,
        log: IO[bytes] | None,
        on_exit: Callable[[Generation], None] | None = None,
        label: str | None = None,
        worker: int = 0,
        changed: asyncio.Event | None = None,
        on_stage: Callable[[Generation, str], None] | None = None,
    ) -> None:
        self.number = number
        self.worker = worker
        self.label = label or f"gen {number}"
        self.on_exit = on_exit
        self.on_stage = on_stage
        self.loop = loop
        self.log = log
        self.pid = 0
        self.state = STARTING
        self.spawned_at = 0  # monotonic ns
        self.stages: dict[str, int] = {}
        self.info: dict[str, str] = {}
        self.connections = 0
        self.spans_sent: set[str] = set()
        self.reloads: dict[int, dict[str, Any]] = {}
        self.requests = Ledger()
        """The request accounting it shipped (with a bake window)."""
        self._output = OutputTee(loop, log, self.label)
        self.tail = self._output.tail
        self.exit_code: int | None = None
        self._not_ours_yet = 0
        self.exit_signal: int | None = None
        self.exited_at = 0
        self.killed_by_master = False
        self._changed = changed if changed is not None else asyncio.Event()
        self._proc: Spawned | None = None
        self._notify: socket.socket | None = None
        self.notify_name = ""

    # -- starting ------------------------------------------------------------------------------
    def prepare(self, env: Mapping[str, str]) -> dict[str, str]:
        """Open this generation's notify socket; return ``env`` completed for the child."""
        # a fresh name per attempt: a child forked for an abandoned attempt (a zygote that
        # answered too late) must find nobody listening, and exit, not report to a retry
        self.notify_name = f"@swapprof/{os.getpid()}/{self.number}.{self.worker}/{secrets.token_hex(4)}"
        self._notify = _notify.receiver(self.notify_name)
        child_env = dict(env)
        child_env[_notify.ENV] = self.notify_name
        child_env[c.ENV_GENERATION] = str(self.number)
        child_env[c.ENV_WORKER] = str(self.worker)
        self.spawned_at = time.monotonic_ns()
        return child_env

    def abandon(self) -> None:
        """The process could not be started: release what ``prepare`` opened."""
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        listeners: Sequence[socket.socket],
        names: Sequence[str],
        extra_fds: Sequence[int] = (),
    ) -> None:
        """Fork and exec the process; raise SpawnError when it cannot be started."""
        child_env = self.prepare(env)
        try:
            self._proc = spawn(argv, child_env, listeners, names, extra_fds=extra_fds)
        except BaseException:
            self.abandon()
            raise
        self._watch()

    def adopt(self, pid: int, output: int, pidfd: int | None = None) -> None:
        """Watch a process started elsewhere (forked by a zygote: re-parented to us, or soon)."""
        self._proc = Spawned(pid=pid, pidfd=os.pidfd_open(pid) if pidfd is None else pidfd, output=output)
        self._watch()

    def _watch(self) -> None:
        assert self._proc is not None and self._notify is not None
        self.pid = self._proc.pid
        self.loop.add_reader(self._notify.fileno(), self._on_notify)
        self.loop.add_reader(self._proc.output, self._on_output)
        self.loop.add_reader(self._proc.pidfd, self._on_exit)

    # -- events --------------------------------------------------------------------------------
    def _on_notify(self) -> None:
        assert self._notify is not None
        while True:
            try:
                data = self._notify.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            self._apply(_notify.decode(data))
        self._changed.set()

    def _apply(self, fields: dict[str, str]) -> None:
        stamp = int(fields[c.F_T]) if fields.get(c.F_T, "").isdigit() else time.monotonic_ns()
        stage = fields.get(c.F_STAGE)
        if stage == c.STAGE_RESUMED:  # accepting again: the next switch starts afresh
            for name in _PARKING_STAGES:
                self.stages.pop(name, None)
            self.state = SERVING
        first = bool(stage) and stage not in self.stages
        if stage == c.STAGE_IMPORTS:
            first = True  # a report, not a step: sent after READY and again after the drain
        elif stage:
            self.stages.setdefault(stage, stamp)
        if fields.get("READY") == "1":
            self.stages.setdefault(c.STAGE_READY, stamp)
            if self.state == STARTING:
                self.state = READY
        if stage == c.STAGE_STOPPED_ACCEPTING and self.state in (READY, SERVING, SWITCHING):
            self.state = DRAINING
        if stage == c.STAGE_PARKED and self.state in (SWITCHING, DRAINING):
            self.state = PARKED
        if stage == c.STAGE_DRAINED:
            self.state = EXITING
        if c.F_REQUESTS in fields:
            self.requests.add(fields.pop(c.F_REQUESTS))
        if fields.get(c.F_RELOAD):
            try:
                result = json.loads(fields[c.F_RELOAD])
                self.reloads[int(result.get("id", 0))] = result
            except (ValueError, TypeError, AttributeError):
                pass
        if fields.get(c.F_SPANS):
            self.spans_sent.update(fields[c.F_SPANS].split(","))
        if fields.get(c.F_CONNECTIONS, "").isdigit():
            self.connections = int(fields[c.F_CONNECTIONS])
        for key, value in fields.items():
            if key.startswith(c.F_PREFIX) and key not in (c.F_T, c.F_STAGE, c.F_SPANS, c.F_RELOAD):
                self.info[key[len(c.F_PREFIX) :].lower()] = value
            elif key == "STATUS":
                self.info["status"] = value
        if first and stage and self.on_stage is not None:
            self.on_stage(self, stage)

    def _on_output(self) -> None:
        assert self._proc is not None
        self._output.read(self._proc.output)

    def _on_exit(self) -> None:
        assert self._proc is not None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            parent = parent_of(self.pid)
            if parent == os.getpid():  # re-parented to us between the two calls
                with contextlib.suppress(ChildProcessError):
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                    if pid:
                        self._exited(status)
                        return
            if parent is not None and self._not_ours_yet < REPARENT_TRIES:
                # an app zygote's fork that died before the zygote exited: it becomes our
                # child (a zombie to reap, with its status) as soon as the zygote is gone
                self._not_ours_yet += 1
                self.loop.remove_reader(self._proc.pidfd)
                self.loop.call_later(REPARENT_WAIT_S, self._on_exit)
                return
            pid, status = self.pid, 0
        if pid == 0:
            return
        self._exited(status)

    def _exited(self, status: int) -> None:
        assert self._proc is not None
        self.exited_at = time.monotonic_ns()
        if os.WIFSIGNALED(status):
            self.exit_signal = os.WTERMSIG(status)
        else:
            self.exit_code = os.waitstatus_to_exitcode(status)
        if self._notify is not None:
            self._on_notify()  # take the last words sent before the exit
            self.loop.remove_reader(self._notify.fileno())
            self._notify.close()
            self._notify = None
        self._output.read(self._proc.output)
        self.loop.remove_reader(self._proc.output)
        os.close(self._proc.output)
        self.loop.remove_reader(self._proc.pidfd)
        os.close(self._proc.pidfd)
        self.state = EXITED
        self._changed.set()
        if self.on_exit is not None:
            self.on_exit(self)

    # -- queries and actions -------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.state != EXITED and self.pid != 0

    @property
    def failure(self) -> str | None:
        """The reason code the generation reported for failing, if any."""
        return self.info.get("reason") if c.STAGE_FAILED in self.stages else None

    def describe_exit(self) -> str:
        if self.exit_signal is not None:
            return f"killed by {signal.Signals(self.exit_signal).name}"
        return f"exited with code {self.exit_code}"

    async def wait_until(self, predicate: Callable[[], bool], deadline_ns: int) -> bool:
        """Wait until ``predicate()`` holds or CLOCK_MONOTONIC passes ``deadline_ns``."""
        while not predicate():
            remaining = (deadline_ns - time.monotonic_ns()) / 1e9
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    def signal(self, signum: int) -> None:
        if self.alive and self._proc is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._proc.pidfd, signum)

    def kill(self) -> None:
        self.killed_by_master = True
        self.signal(signal.SIGKILL)

    def open_fds(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic_ns()
        rss, pss = memory_kb(self.pid) if self.alive else (None, None)
        return {
            "generation": self.number,
            "worker": self.worker,
            "pid": self.pid,
            "state": self.state,
            "uptime_s": round(((self.exited_at or now) - self.spawned_at) / 1e9, 3)
            if self.spawned_at
            else 0.0,
            "connections": self.connections,
            "fds": self.open_fds() if self.alive else None,
            "rss_kb": rss,
            "pss_kb": pss,
            **{key: self.info[key] for key in ("interface", "loop", "http") if key in self.info},
        }


def parent_of(pid: int) -> int | None:
    """``pid``'s parent pid, or None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def memory_kb(pid: int) -> tuple[int | None, int | None]:
    """(RSS, PSS) of ``pid`` in KiB: VmRSS of /proc/PID/status, Pss of /proc/PID/smaps_rollup
    (None where unreadable: another user's process, a kernel without smaps_rollup)."""
    found: list[int | None] = []
    for path, key in ((f"/proc/{pid}/status", "VmRSS:"), (f"/proc/{pid}/smaps_rollup", "Pss:")):
        value = None
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith(key):
                        value = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            pass
        found.append(value)
    return found[0], found[1]


def default_log() -> IO[bytes]:
    return sys.stderr.buffer


async def stop_all(generations: Iterable[Generation], budget_s: float, grace_s: float = 5.0) -> int:
    """SIGTERM every live generation (SIGKILL one still starting) and wait ``budget_s`` for
    them to exit; SIGKILL what outlasts it. Return how many had to be killed."""
    alive = [g for g in generations if g.alive]
    for gen in alive:
        if gen.state == STARTING:
            gen.kill()
        else:
            gen.signal(signal.SIGTERM)
    deadline = time.monotonic_ns() + int(budget_s * 1e9)
    killed = 0
    for gen in alive:
        if not await gen.wait_until(lambda g=gen: not g.alive, deadline):  # type: ignore[misc]
            gen.kill()
            killed += 1
            await gen.wait_until(lambda g=gen: not g.alive, time.monotonic_ns() + int(grace_s * 1e9))  # type: ignore[misc]
    return killed
