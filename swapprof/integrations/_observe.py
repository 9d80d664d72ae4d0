"""``swapprof observe -- CMD...``: run a server that has no hooks as a child and record its upgrades.

    startup -> main loop -> shutdown, one thread:

The observer binds its event socket (``RUN_DIR/observe/events-PID.sock``, handed to the server
as ``SWAPPROF_EVENTS``), starts CMD in its own session (it dies with the observer:
PR_SET_PDEATHSIG), then loops: signals it receives are forwarded to CMD (a signal of the
adapter's ``upgrade_signals`` first begins an upgrade, stamped when it arrived); every
``SCAN_S`` it lists CMD's children (``/proc``) and notes workers appearing and, through a pidfd
each, exiting; workers' own events (``swapprof.integrations.asgi``) come in on the socket.
``_stitch`` turns them into one trace and one upgrade record per upgrade; ``/metrics`` is on a
loopback port (``state.json``). When CMD exits, a pending upgrade ends as it stands, telemetry
is flushed (bounded) and the observer exits with CMD's status (128 + N for signal N).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from swapprof._errors import ConfigError
from swapprof._process import children
from swapprof._vocabulary import ENV_RUN_DIR
from swapprof.integrations import _events as ev
from swapprof.integrations._adapters import Adapter, cmdline
from swapprof.integrations._http import Endpoint
from swapprof.integrations._recorder import Recorder
from swapprof.integrations._stitch import Stitcher
from swapprof.integrations._timeline import Timeline
from swapprof.integrations.asgi import process_start_ns

SCAN_S = 0.05
MAX_SEEN = 4096
FORWARDED = (
    signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH,
)  # fmt: skip
_PR_SET_PDEATHSIG = 1


def _die_with_observer() -> None:  # between fork and exec: no Python objects beyond this call
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Observer:
    def __init__(
        self,
        argv: Sequence[str],
        adapter: Adapter,
        run_dir: str | os.PathLike[str],
        *,
        metrics_bind: str = "127.0.0.1:0",
        token: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not argv:
            raise ConfigError(
                "swapprof observe: no command (swapprof observe -- uvicorn app:app --workers 2)"
            )
        self.argv = list(argv)
        self.adapter = adapter
        self.run_dir = Path(run_dir).resolve()
        self.metrics_bind, self.token = metrics_bind, token
        self.env = dict(os.environ if env is None else env)
        self.stitcher = Stitcher(adapter.name, self._finish)
        self.pidfds: dict[int, int] = {}
        self.seen: set[int] = set()
        self._signals: list[tuple[int, int]] = []
        self.child: subprocess.Popen[bytes] | None = None
        self.recorder: Recorder | None = None

    # -- startup -> main loop -> shutdown ------------------------------------------------------
    def run(self) -> int:
        receiver = ev.Receiver(self.run_dir / "observe" / f"events-{os.getpid()}.sock")
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED}
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        endpoint = None
        try:
            env = {**self.env, ev.ENV_EVENTS: receiver.path, ENV_RUN_DIR: str(self.run_dir)}
            try:
                self.child = subprocess.Popen(
                    self.argv, env=env, start_new_session=True, preexec_fn=_die_with_observer
                )
            except OSError as exc:
                raise ConfigError(f"swapprof observe: cannot run {self.argv[0]!r}: {exc}") from exc
            self.recorder = Recorder(
                self.run_dir,
                role="observer",
                generation=lambda: self.stitcher.generation,
                generations_alive=self.stitcher.generations_alive,
            )
            endpoint = Endpoint(self.metrics_bind, lambda: list(self._recent()), self.token)
            self.recorder.write_state(
                "state.json",
                {
                    "server": self.adapter.name,
                    "observer_pid": os.getpid(),
                    "master_pid": self.child.pid,
                    "debug_address": endpoint.address,
                    "events_socket": receiver.path,
                },
            )
            print(
                f"swapprof observe: /metrics on http://{endpoint.address}, run dir {self.run_dir}", flush=True
            )
            self._main_loop(receiver, endpoint, wake_r)
            return self._status()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shutdown(receiver, endpoint, wake_r, wake_w)

    def _main_loop(self, receiver: ev.Receiver, endpoint: Endpoint, wake_r: int) -> None:
        assert self.child is not None
        selector = selectors.DefaultSelector()
        selector.register(receiver.sock, selectors.EVENT_READ, "events")
        selector.register(endpoint.sock, selectors.EVENT_READ, "http")
        selector.register(wake_r, selectors.EVENT_READ, "signal")
        while True:
            for key, _ in selector.select(SCAN_S):
                if key.data == "events":
                    for message in receiver.drain():
                        self.stitcher.event(message)
                elif key.data == "http":
                    endpoint.handle()
                elif key.data == "signal":
                    with contextlib.suppress(OSError):
                        os.read(wake_r, 512)
                elif isinstance(key.data, int):  # a worker's pidfd: it exited
                    selector.unregister(key.fileobj)
                    os.close(self.pidfds.pop(key.data))
                    self.stitcher.gone(key.data, time.monotonic_ns())
            self._forward(selector)
            self._scan(selector)
            self.stitcher.check()
            if self.child.poll() is not None:
                for message in receiver.drain():
                    self.stitcher.event(message)
                return

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append((signum, time.monotonic_ns()))  # only record; the loop acts

    def _forward(self, selector: selectors.BaseSelector) -> None:
        assert self.child is not None
        while self._signals:
            signum, ns = self._signals.pop(0)
            if signum in self.adapter.upgrade_signals:
                self._scan(selector)  # the server has not had the signal yet: its workers are the old side
                pending = self.stitcher.begin(ns, old_pid=self.child.pid, new_pid=self.child.pid, spawn_ns=ns)
                pending.expected_new = len(pending.old)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signum)

    def _scan(self, selector: selectors.BaseSelector) -> None:
        assert self.child is not None
        found = children(self.child.pid)
        if len(self.seen) > MAX_SEEN:
            self.seen &= set(found)
        for pid in found:
            if pid in self.seen:
                continue
            self.seen.add(pid)  # once: an exited worker stays a child (a zombie) until reaped
            if not self.adapter.is_worker(pid, cmdline(pid)):
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            self.pidfds[pid] = fd
            selector.register(fd, selectors.EVENT_READ, pid)
            pending = self.stitcher.pending
            generation = pending.new_generation if pending is not None else self.stitcher.generation
            generation = generation or self.stitcher.generation
            index = self.stitcher.free_index(generation)
            self.stitcher.started(pid, generation, index, process_start_ns(pid))

    def _finish(self, timeline: Timeline, ended_ns: int, outcome: str, reason: str | None) -> dict[str, Any]:
        assert self.recorder is not None
        data = self.recorder.finish(timeline, ended_ns, outcome, reason)
        phases = " ".join(f"{k}={v:.1f}ms" for k, v in data["phases_ms"].items())
        print(
            f"swapprof observe: upgrade {data['id']} {data['outcome']}, gen {data['old_generation']} -> "
            f"{data['new_generation']}, service_gap {data.get('service_gap_ms')} ms, {phases}",
            flush=True,
        )
        return data

    def _recent(self) -> list[dict[str, Any]]:
        return list(self.recorder.recent) if self.recorder is not None else []

    def _status(self) -> int:
        assert self.child is not None
        code = self.child.wait()
        return 128 - code if code < 0 else code

    def _shutdown(self, receiver: ev.Receiver, endpoint: Endpoint | None, *fds: int) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(30)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        with contextlib.suppress(Exception):
            self.stitcher.stop()
        for fd in [*self.pidfds.values(), *fds]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pidfds.clear()
        if endpoint is not None:
            endpoint.close()
        receiver.close()
        if self.recorder is not None:
            self.recorder.close()
            with contextlib.suppress(OSError):
                (self.run_dir / "state.json").unlink()
