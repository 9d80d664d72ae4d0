"""Start a generation: fork, place the listeners at fds 3..., exec a fresh interpreter.

``subprocess`` cannot set ``LISTEN_PID`` to the child's own PID (the environment is built
before the fork), so this module forks itself. Between fork and exec the child only moves
file descriptors, sets its parent-death signal and calls execve. An exec failure travels
back through a close-on-exec pipe, so the parent knows at once whether the spawn worked.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from swapprof._errors import SwapprofError
from swapprof.server._contract import ENV_LISTEN_FDNAMES, ENV_LISTEN_FDS, ENV_LISTEN_PID
from swapprof.server._fds import SD_LISTEN_FDS_START
from swapprof.server._libc import libc

_PR_SET_PDEATHSIG = 1


class SpawnError(SwapprofError):
    """The new interpreter could not be started (fork or exec failed)."""


@dataclass
class Spawned:
    pid: int
    pidfd: int
    output: int  # read end of the child's stdout+stderr pipe, non-blocking


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    listeners: Sequence[socket.socket],
    names: Sequence[str],
    death_signal: int = signal.SIGTERM,
    extra_fds: Sequence[int] = (),
) -> Spawned:
    """Fork and exec ``argv`` with ``listeners`` at fds 3.. and then ``extra_fds`` right after
    them (not counted in LISTEN_FDS); raise SpawnError on failure."""
    env = {k: v for k, v in env.items() if not k.startswith("LISTEN_")}
    env[ENV_LISTEN_FDS] = str(len(listeners))
    env[ENV_LISTEN_FDNAMES] = ":".join(names)
    env_items = list(env.items())
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    sources = [s.fileno() for s in listeners] + list(extra_fds)
    parent = os.getpid()
    executable = argv[0]
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (out_r, out_w, err_r, err_w, devnull):
            os.close(fd)
        raise SpawnError(f"fork failed: {exc}") from exc
    if pid == 0:  # child: no return from this branch
        _child(executable, list(argv), env_items, sources, out_w, err_w, devnull, parent, death_signal)
    os.close(out_w)
    os.close(err_w)
    os.close(devnull)
    try:
        failure = _read_all(err_r)
    finally:
        os.close(err_r)
    if failure:
        os.waitpid(pid, 0)
        os.close(out_r)
        code = struct.unpack("i", failure[:4])[0] if len(failure) >= 4 else 0
        raise SpawnError(f"cannot start {executable}: {os.strerror(code) if code else failure!r}")
    os.set_blocking(out_r, False)
    return Spawned(pid=pid, pidfd=os.pidfd_open(pid), output=out_r)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 256):
        chunks.append(chunk)
    return b"".join(chunks)


def _child(
    executable: str,
    argv: list[str],
    env_items: list[tuple[str, str]],
    sources: list[int],
    out_w: int,
    err_w: int,
    devnull: int,
    parent: int,
    death_signal: int,
) -> None:
    try:
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # the master died before prctl took effect
            os._exit(1)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        # Move listeners above every target slot first so no dup2 clobbers a source.
        high_base = SD_LISTEN_FDS_START + len(sources) + 8
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, high_base) for fd in sources]
        err_w = fcntl.fcntl(err_w, fcntl.F_DUPFD_CLOEXEC, high_base)
        for index, fd in enumerate(moved):
            os.dup2(fd, SD_LISTEN_FDS_START + index, inheritable=True)
        keep_from = SD_LISTEN_FDS_START + len(sources)
        os.closerange(keep_from, err_w)
        os.closerange(err_w + 1, 1 << 20)
        env = dict(env_items)
        env[ENV_LISTEN_PID] = str(os.getpid())
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.execve(executable, argv, env)
    except OSError as exc:
        os.write(err_w, struct.pack("i", exc.errno or 0))
    except BaseException:
        os.write(err_w, b"\0\0\0\0unexpected")
    finally:
        os._exit(127)
