"""The event stream of an integration: both ends of it, and every word it carries.

A process taking part in an upgrade (a gunicorn worker, an ASGI app under uvicorn ``--workers``)
tells the process that records the upgrade (the gunicorn master's recorder thread, ``swapprof
observe``) what happened to it and when, one JSON object per datagram on a Unix datagram socket
whose path is in ``SWAPPROF_EVENTS``::

    {"event": "imported", "pid": 4242, "ns": 81234567890123, ...}

``ns`` is CLOCK_MONOTONIC (one clock for every process of the machine), ``pid`` the sender.
Other fields are per event (``index``: the worker index; ``spans``: the phases the sender
recorded itself, so the recorder does not record them again).

Without ``SWAPPROF_EVENTS`` the events are appended as JSON lines to ``RUN_DIR/events.jsonl``
(``SWAPPROF_RUN_DIR``, default ``./.swapprof``), one ``write`` each, for a reader to pick up.

Sending never blocks and never raises: a full socket buffer or a recorder that is gone drops the
event (``Sender.dropped`` counts them).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from swapprof._vocabulary import DEFAULT_RUN_DIR, ENV_RUN_DIR

ENV_EVENTS: Final = "SWAPPROF_EVENTS"
EVENTS_FILE: Final = "events.jsonl"
MAX_DATAGRAM: Final = 65536

# ---------------------------------------------------------------- events of a worker
STARTED: Final = "started"  # the process began (ASGI wrapper imported; gunicorn post_fork)
IMPORTED: Final = "imported"  # the app is imported (gunicorn post_worker_init)
LIFESPAN_READY: Final = "lifespan_ready"  # ASGI lifespan startup complete
SERVED: Final = "served"  # the first request was answered (its response started)
SHUTDOWN: Final = "shutdown"  # shutdown began (ASGI lifespan shutdown; gunicorn SIGTERM sent)
STOPPED: Final = "stopped"  # shutdown ended (ASGI lifespan shutdown done; gunicorn worker_exit)
# ---------------------------------------------------------------- events of a gunicorn master
RELOAD: Final = "reload"  # HUP: the configuration is being reloaded
FORK: Final = "fork"  # pre_fork: a worker is about to be forked
TERM: Final = "term"  # the master signalled an old worker to stop
REAPED: Final = "reaped"  # child_exit: a worker was reaped
TICK: Final = "tick"  # wakes the recorder (nothing happened)
USR2: Final = "usr2"  # pre_exec, in the USR2 child: the upgrade it takes over (id, child)
HANDBACK: Final = "handback"  # a USR2's new master stops while the old one lives (reason, new)


def events_path(env: Mapping[str, str] | None = None) -> str | None:
    return (os.environ if env is None else env).get(ENV_EVENTS) or None


def run_dir(env: Mapping[str, str] | None = None) -> Path:
    return Path((os.environ if env is None else env).get(ENV_RUN_DIR) or DEFAULT_RUN_DIR)


def event(name: str, ns: int | None = None, **fields: Any) -> dict[str, Any]:
    return {"event": name, "pid": os.getpid(), "ns": time.monotonic_ns() if ns is None else ns, **fields}


class Sender:
    """The sending end: ``send(event)`` to ``path`` (a datagram socket), else to the run dir's
    ``events.jsonl``. Safe after fork (the socket is opened per process)."""

    def __init__(self, path: str | None = None, file: Path | None = None) -> None:
        self.path = path
        self.file = file
        self.dropped = 0
        self._sock: socket.socket | None = None
        self._pid = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Sender:
        path = events_path(env)
        return cls(path, None if path else run_dir(env) / EVENTS_FILE)

    def send(self, message: Mapping[str, Any]) -> bool:
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            if self.path is None:
                return self._append(data)
            if self._sock is None or self._pid != os.getpid():
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
                self._pid = os.getpid()
            self._sock.sendto(data, self.path)
            return True
        except (OSError, ValueError):
            self.dropped += 1
            return False

    def _append(self, data: bytes) -> bool:
        if self.file is None:
            return False
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            return os.write(fd, data + b"\n") == len(data) + 1
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Receiver:
    """The receiving end: a datagram socket bound at ``path`` (0600), read without blocking."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self.sock.bind(self.path)
        finally:
            os.umask(old)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> list[dict[str, Any]]:
        """Every event waiting now (malformed datagrams are skipped)."""
        found: list[dict[str, Any]] = []
        while True:
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return found
            except OSError:
                return found
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                message = json.loads(data)
                if isinstance(message, dict) and isinstance(message.get("event"), str):
                    found.append(message)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
