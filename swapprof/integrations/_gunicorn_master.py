"""The gunicorn master's side: what its hooks note, and the recorder thread that records it.

gunicorn's hooks run on the master's main thread, inside its arbiter loop. They only stamp
CLOCK_MONOTONIC and send one datagram each to the master's own event socket
(``RUN_DIR/gunicorn/master-PID.sock``), which its workers send to as well: a hook never waits
for telemetry. One daemon thread (``swapprof-gunicorn``) reads that socket, answers the
loopback ``/metrics``, stitches the upgrades (``_stitch``) and records them (``_recorder``).

Fork safety: the master forks its workers while that thread runs. Around every ``os.fork``
(``os.register_at_fork``) the thread is held outside its work for at most ``FORK_WAIT_S``, so
no lock it holds is copied into a worker held; the child closes the sockets it inherited and
drops the inherited telemetry (``swapprof.telemetry.forget``) before any of its own code runs.

USR2: the old master's ``pre_exec`` puts the upgrade (``ENV_UPGRADE``: id, stamps, generation)
into ``cfg.env_orig``, the environment gunicorn execs the new master with; the new master
records that upgrade. The old master relays what happens to its workers (told to stop,
exited, reaped) to the new master's socket, and the new master ends the upgrade when the old
one has exited (a pidfd). A new master that goes while the old one lives leaves the upgrade to
the old master, which records it as rolled back (``_gunicorn_usr2``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import threading
import time
from pathlib import Path
from typing import Any, Final

from swapprof._process import pid_alive
from swapprof._vocabulary import REASON_CRASHED, ROLLED_BACK
from swapprof.integrations import _events as ev
from swapprof.integrations._gunicorn_usr2 import HandedOver, halt_reason, halt_status, handback
from swapprof.integrations._http import Endpoint
from swapprof.integrations._recorder import Recorder
from swapprof.integrations._stitch import Stitcher
from swapprof.integrations._timeline import Timeline

log = logging.getLogger("swapprof.integrations")

ENV_UPGRADE: Final = "SWAPPROF_GUNICORN_UPGRADE"
ENV_METRICS_BIND: Final = "SWAPPROF_METRICS_BIND"
ENV_DEBUG_TOKEN: Final = "SWAPPROF_DEBUG_TOKEN"
SOCKET_DIR: Final = "gunicorn"
FORK_WAIT_S = 0.05
TICK_S = 0.25
STOP_WAIT_S = 1.0


def socket_path(run_dir: Path, pid: int) -> Path:
    return run_dir / SOCKET_DIR / f"master-{pid}.sock"


class MasterRecorder:
    """Started by ``on_starting`` in the master; stopped by ``on_exit``."""

    def __init__(self, arbiter: Any, run_dir: Path, env: dict[str, str]) -> None:
        self.arbiter = arbiter
        self.pid = os.getpid()
        self.run_dir = run_dir
        self.stitcher = Stitcher("gunicorn", self._finish)
        self.receiver = ev.Receiver(socket_path(run_dir, self.pid))
        self.sender = ev.Sender(self.receiver.path)
        self.recorder = Recorder(
            run_dir,
            role="master",
            generation=lambda: self.stitcher.generation,
            generations_alive=self.stitcher.generations_alive,
        )
        self.endpoint = Endpoint(
            env.get(ENV_METRICS_BIND) or "127.0.0.1:0",
            lambda: list(self.recorder.recent),
            env.get(ENV_DEBUG_TOKEN),
        )
        self.quiet = threading.Lock()
        self.stopping = threading.Event()
        self.parent_pidfd: int | None = None
        self.parent_pid: int | None = None
        self._relayers: dict[int, ev.Sender] = {}
        self.handed: HandedOver | None = None
        self.halted_with: int | None = None
        self.selector = selectors.DefaultSelector()
        inherited = env.pop(ENV_UPGRADE, None)
        if inherited:
            self._join_usr2(inherited)
        self.state = {
            "server": "gunicorn",
            "master_pid": self.pid,
            "debug_address": self.endpoint.address,
            "events_socket": self.receiver.path,
            "run_dir": str(run_dir),
        }
        self.recorder.write_state("state.json", self.state)
        self.thread = threading.Thread(target=self._run, name="swapprof-gunicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # -- fork ----------------------------------------------------------------------------------
    def before_fork(self) -> None:
        self._held = self.quiet.acquire(timeout=FORK_WAIT_S)

    def after_fork_in_parent(self) -> None:
        if getattr(self, "_held", False):
            self._held = False
            self.quiet.release()

    def after_fork_in_child(self) -> None:
        """In a worker (or the USR2 child): nothing of the recorder is ours any more."""
        for closeable in (self.receiver.sock, self.endpoint.sock):
            with contextlib.suppress(OSError):
                closeable.close()
        if self.parent_pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.parent_pidfd)

    # -- USR2 ----------------------------------------------------------------------------------
    def usr2_environment(self, ns: int) -> str:
        """What the new master needs to record this USR2 upgrade (``pre_exec``, in the child);
        the old master is told too, in case the new one does not take."""
        upgrade = self.stitcher.next_id
        self.note(ev.USR2, ns, id=upgrade, child=os.getpid())
        return json.dumps(
            {"id": upgrade, "requested_ns": ns, "generation": self.stitcher.generation, "old_pid": self.pid}
        )

    def _handed_over(self, message: dict[str, Any]) -> None:
        """Our USR2 child took an upgrade over: watch it, and number our next upgrade past it."""
        workers = self.stitcher.workers.items()
        handed = HandedOver(message, self.stitcher.generation, self.pid)
        for pid, (generation, index) in workers:
            if generation == self.stitcher.generation:
                handed.timeline.worker("old", pid, index)
        self.stitcher.next_id = max(self.stitcher.next_id, handed.timeline.id + 1)
        try:
            fd = os.pidfd_open(handed.child)
        except OSError:
            return
        self.handed = handed
        self.selector.register(fd, selectors.EVENT_READ, "child")

    def _child_gone(self, fd: int) -> None:
        """Our USR2 child went while we serve: the upgrade rolled back."""
        self.selector.unregister(fd)
        os.close(fd)
        for message in self.receiver.drain():  # its handback, sent just before it exited
            self._handle(message)
        handed, self.handed = self.handed, None
        if handed is None:
            return
        self._finish(handed.timeline, time.monotonic_ns(), ROLLED_BACK, handed.reason or REASON_CRASHED)
        self.recorder.write_state("state.json", self.state)  # the new master wrote its own

    def _hand_back(self) -> bool:
        """In a new master stopping while its old master lives: give it the upgrade to record."""
        pending, parent = self.stitcher.pending, self.parent_pid
        if pending is None or parent is None or pending.old_pid != parent or not pid_alive(parent):
            return False
        sender = ev.Sender(str(socket_path(self.run_dir, parent)))
        sender.send(handback(pending, halt_reason(self.halted_with)))
        sender.close()
        self.stitcher.pending = None
        return True

    def _join_usr2(self, text: str) -> None:
        try:
            facts = json.loads(text)
            old_pid, requested = int(facts["old_pid"]), int(facts["requested_ns"])
            self.stitcher.generation = int(facts["generation"])
            self.stitcher.next_id = int(facts["id"])
        except (ValueError, KeyError, TypeError):
            log.debug("swapprof: malformed %s=%r", ENV_UPGRADE, text)
            return
        self.stitcher.begin(
            requested, old_pid=old_pid, new_pid=self.pid, spawn_mode="exec", spawn_ns=requested
        )
        self.parent_pid = old_pid
        with contextlib.suppress(OSError, AttributeError):
            self.parent_pidfd = os.pidfd_open(old_pid)

    def _relay(self, message: dict[str, Any]) -> None:
        """While a USR2 child master exists, what happens to our workers is its upgrade's old side."""
        child = getattr(self.arbiter, "reexec_pid", 0)
        if not child:
            return
        sender = self._relayers.get(child)
        if sender is None:
            sender = self._relayers[child] = ev.Sender(str(socket_path(self.run_dir, child)))
        pid = message.get("target", message.get("pid"))
        generation, index = self.stitcher.workers.get(int(pid or 0), (None, None))
        sender.send({**message, "relayed": True, "pid": pid, "index": index, "generation": generation})

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        selector = self.selector
        selector.register(self.receiver.sock, selectors.EVENT_READ, "events")
        selector.register(self.endpoint.sock, selectors.EVENT_READ, "http")
        if self.parent_pidfd is not None:
            selector.register(self.parent_pidfd, selectors.EVENT_READ, "parent")
        while True:
            try:
                ready = selector.select(TICK_S)
            except OSError:
                ready = []
            with self.quiet:
                try:
                    for key, _ in ready:
                        if key.data == "events":
                            for message in self.receiver.drain():
                                self._handle(message)
                        elif key.data == "http":
                            self.endpoint.handle()
                        elif key.data == "parent":
                            selector.unregister(key.fileobj)
                            self._old_master_gone()
                        elif key.data == "child":
                            self._child_gone(key.fd)
                    self.stitcher.check(old_gone=None if self.parent_pid is None else False)
                except Exception:  # the recorder never takes gunicorn down with it
                    log.debug("swapprof: recorder step failed", exc_info=True)
            if self.stopping.is_set():
                with self.quiet, contextlib.suppress(Exception):
                    for message in self.receiver.drain():
                        self._handle(message)
                return

    def _handle(self, message: dict[str, Any]) -> None:
        name, ns = message.get("event"), int(message.get("ns") or time.monotonic_ns())
        if message.get("relayed"):  # the old master's workers (USR2)
            pending = self.stitcher.pending
            pid = int(message.get("pid") or 0)
            if pending is not None and pending.old_pid is not None and pid:
                pending.worker("old", pid, message.get("index")).stamp(str(name), ns)
            return
        if name == ev.RELOAD:
            self.stitcher.begin(ns, old_pid=self.pid, new_pid=self.pid)
        elif name == ev.USR2:
            self._handed_over(message)
        elif name == ev.HANDBACK:
            if self.handed is not None:
                self.handed.handed_back(message)
        elif name == ev.FORK:
            pending = self.stitcher.pending
            if pending is not None and message.get("generation") == pending.new_generation:
                pending.expected_new += 1
                pending.spawn_ns = min(pending.spawn_ns or ns, ns)
        elif name == ev.STARTED:
            self.stitcher.started(int(message["pid"]), int(message["generation"]), int(message["index"]), ns)
        elif name == ev.TERM:
            target = int(message["target"])
            if message.get("sig") == "SIGKILL":
                self.recorder.forced_kill()
            self.stitcher.stamp(target, ev.TERM, ns)
            self._relay(message)
        elif name == ev.REAPED:
            self._relay(message)
            self.stitcher.gone(int(message["target"]), ns)
        else:
            self.stitcher.event(message)
            if name == ev.STOPPED:
                self._relay(message)

    def _old_master_gone(self) -> None:
        self.parent_pid = None
        pending = self.stitcher.pending
        if pending is not None:
            now = time.monotonic_ns()
            for worker in pending.old.values():
                worker.stamp(ev.REAPED, now)  # reaped by a master that is gone now

    def _finish(self, timeline: Timeline, ended_ns: int, outcome: str, reason: str | None) -> dict[str, Any]:
        data = self.recorder.finish(timeline, ended_ns, outcome, reason)
        with contextlib.suppress(Exception):
            phases = " ".join(f"{k}={v:.1f}ms" for k, v in data["phases_ms"].items())
            self.arbiter.log.info(
                "swapprof: upgrade %s %s, gen %s -> %s, service_gap %s ms, %s",
                data["id"], data["outcome"], data["old_generation"], data["new_generation"],
                data.get("service_gap_ms"), phases,
            )  # fmt: skip
        return data

    # -- hooks' side -----------------------------------------------------------------------------
    def note(self, name: str, ns: int | None = None, **fields: Any) -> None:
        """From a hook on the main thread: one datagram to the thread, never waiting."""
        self.sender.send(ev.event(name, ns, **fields))

    def halting(self, exc: BaseException) -> None:
        """gunicorn raised ``exc`` from ``reap_workers``: the first ``HaltServer``'s status says why."""
        if self.halted_with is None:
            self.halted_with = halt_status(exc)

    def stop(self) -> None:
        """``on_exit`` (or the exit without it): end a pending upgrade as it stands, flush (bounded), close."""
        self.stopping.set()
        self.note(ev.TICK)
        self.thread.join(STOP_WAIT_S)
        with self.quiet:
            with contextlib.suppress(Exception):
                if not self._hand_back():
                    self.stitcher.stop()
            self.endpoint.close()
            self.receiver.close()
            state = self.recorder.run_dir.read_json(self.run_dir / "state.json")
            if isinstance(state, dict) and state.get("master_pid") == self.pid:
                with contextlib.suppress(OSError):
                    (self.run_dir / "state.json").unlink()
        self.recorder.close()
