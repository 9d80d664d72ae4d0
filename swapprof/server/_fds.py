"""Listening sockets: parse ``--bind`` values, bind them once, inherit and pass them.

Passing follows systemd's socket-activation contract: the sockets sit at fds 3, 4, ...;
``LISTEN_FDS`` counts them, ``LISTEN_PID`` names the process they are meant for and
``LISTEN_FDNAMES`` gives a colon-separated name for each.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from swapprof._errors import ConfigError, ListenerError
from swapprof.server._contract import ENV_LISTEN_FDNAMES, ENV_LISTEN_FDS, ENV_LISTEN_PID

SD_LISTEN_FDS_START = 3
BACKLOG = 2048


@dataclass(frozen=True)
class BindSpec:
    """One ``--bind`` value: a TCP host and port, or a Unix socket path."""

    family: socket.AddressFamily
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return self.family == socket.AF_UNIX


def parse_bind(value: str) -> BindSpec:
    """Parse ``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH``; raise ConfigError otherwise."""
    if value.startswith("unix:"):
        path = value[5:]
        if not path:
            raise ConfigError(f"--bind {value!r}: empty Unix socket path")
        return BindSpec(socket.AF_UNIX, path=os.path.abspath(path))
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"--bind {value!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
        family = socket.AF_INET6
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"--bind {value!r}: expected HOST:PORT, [IPV6]:PORT or unix:PATH")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"--bind {value!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--bind {value!r}: port {port} is outside 0-65535")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        socket.inet_pton(family, host)
    except OSError:
        raise ConfigError(f"--bind {value!r}: {host!r} is not a numeric IP address") from None
    return BindSpec(family, host=host, port=port)


def bind(spec: BindSpec) -> socket.socket:
    """Create, bind and listen; the socket is not inheritable (passing dups it explicitly)."""
    sock = socket.socket(spec.family, socket.SOCK_STREAM)
    try:
        if spec.is_unix:
            _remove_stale_unix_socket(spec.path)
            sock.bind(spec.path)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spec.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((spec.host, spec.port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenerError(f"cannot listen on {describe_spec(spec)}: {exc.strerror or exc}") from exc
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ListenerError(f"cannot listen on unix:{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        raise ListenerError(f"cannot listen on unix:{path}: {exc}") from exc
    finally:
        probe.close()
    raise ListenerError(f"cannot listen on unix:{path}: another process is listening there")


def describe_spec(spec: BindSpec) -> str:
    if spec.is_unix:
        return f"unix:{spec.path}"
    if spec.family == socket.AF_INET6:
        return f"[{spec.host}]:{spec.port}"
    return f"{spec.host}:{spec.port}"


def describe(sock: socket.socket) -> str:
    """The address a socket listens on, in ``--bind`` syntax (the real port when bound to 0)."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name if isinstance(name, str) else name.decode()}"
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    return f"{name[0]}:{name[1]}"


def probe_address(sock: socket.socket) -> tuple[socket.AddressFamily, str | tuple[str, int]]:
    """Where a client on this host reaches the listener (wildcards become loopback)."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return sock.family, name if isinstance(name, str) else name.decode()
    host = name[0]
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return sock.family, (host, name[1])


def inherit(env: MutableMapping[str, str]) -> list[tuple[str, socket.socket]] | None:
    """Take sockets passed by systemd (or a master) per LISTEN_FDS; None if none were passed.

    The LISTEN_* variables are removed from ``env`` once read, as sd_listen_fds(1) does, so
    they are not passed on by accident.
    """
    count_text = env.get(ENV_LISTEN_FDS)
    if count_text is None:
        return None
    pid_text = env.get(ENV_LISTEN_PID, "")
    names_text = env.get(ENV_LISTEN_FDNAMES, "")
    for key in (ENV_LISTEN_FDS, ENV_LISTEN_PID, ENV_LISTEN_FDNAMES):
        env.pop(key, None)
    if pid_text and pid_text != str(os.getpid()):
        return None  # meant for another process (our parent), as libsystemd decides
    try:
        count = int(count_text)
    except ValueError:
        raise ListenerError(f"LISTEN_FDS={count_text!r} is not a number") from None
    if count <= 0:
        return None
    names = names_text.split(":") if names_text else []
    result = []
    for index in range(count):
        fd = SD_LISTEN_FDS_START + index
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ListenerError(f"LISTEN_FDS: fd {fd} is not a usable socket: {exc}") from exc
        sock.set_inheritable(False)
        name = names[index] if index < len(names) and names[index] else f"fd{fd}"
        result.append((name, sock))
    return result


def listen_env(names: list[str], pid: int, base: Mapping[str, str]) -> dict[str, str]:
    """Environment that hands ``len(names)`` sockets at fds 3... to process ``pid``."""
    env = dict(base)
    env[ENV_LISTEN_FDS] = str(len(names))
    env[ENV_LISTEN_PID] = str(pid)
    env[ENV_LISTEN_FDNAMES] = ":".join(names)
    return env


def take(specs: Sequence[BindSpec], env: MutableMapping[str, str]) -> tuple[list[socket.socket], list[str]]:
    """The listeners a master serves: inherited from systemd (LISTEN_FDS) if any, else bound
    from ``specs``. Returns the sockets and their names (``http`` / ``unix`` when bound here)."""
    inherited = inherit(env)
    if inherited:
        return [sock for _, sock in inherited], [name for name, _ in inherited]
    sockets = [bind(spec) for spec in specs]
    return sockets, ["unix" if spec.is_unix else "http" for spec in specs]
