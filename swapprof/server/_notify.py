"""The sd_notify datagram protocol, both ends.

A message is newline-separated ``KEY=VALUE`` lines sent as one datagram to the Unix socket
named by ``NOTIFY_SOCKET`` (a leading ``@`` means Linux's abstract namespace). systemd reads
``READY=1``, ``RELOADING=1``, ``MONOTONIC_USEC=``, ``STATUS=``; the master also reads
``SWAPPROF_*`` keys a generation sends to report its stages (systemd ignores unknown keys).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping

ENV = "NOTIFY_SOCKET"


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def encode(fields: Mapping[str, object]) -> bytes:
    return "\n".join(f"{key}={value}" for key, value in fields.items()).encode()


def decode(data: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


class Notifier:
    """Client end: sends to ``NOTIFY_SOCKET`` if set, otherwise does nothing.

    Notification is best effort, like sd_notify(3): a missing or dead receiver is not an
    error for the sender.
    """

    def __init__(self, target: str | None) -> None:
        self.target = target or None
        self._sock: socket.socket | None = None
        if self.target is not None:  # created up front: send() is then safe from any thread
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        return cls((env if env is not None else os.environ).get(ENV))

    @property
    def enabled(self) -> bool:
        return self.target is not None

    def send(self, **fields: object) -> bool:
        try:
            return self.deliver(**fields)
        except OSError:
            return False

    def deliver(self, **fields: object) -> bool:
        """Like ``send``, but a failed send raises its OSError (False: no target to send to)."""
        if self.target is None or self._sock is None:
            return False
        self._sock.sendto(encode(fields), _address(self.target))
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as systemd wants in MONOTONIC_USEC."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def receiver(name: str) -> socket.socket:
    """Server end: a non-blocking datagram socket bound to ``name`` (``@abstract`` or path)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    if not name.startswith("@"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(_address(name))
    return sock
