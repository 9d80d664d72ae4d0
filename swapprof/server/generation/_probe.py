"""Self-probe: a new generation proves it serves by answering a request through the shared
listener. The old generation shares that listener, so it may accept the probe; it answers 409
(the nonce is not its own) and the probe retries on a new connection.

Left to the kernel, the old generation wins that race most of the time: it sleeps in epoll and
is woken on the other core the moment the connection is queued, while the new generation is
still busy connecting. Measured here: 1 to 146 attempts, median 9, about 12 ms. So once the
connection is established the prober *claims* it: it accepts from the shared listener itself,
right away, until it meets its own connection, and hands everything it accepted to its own
server (a real client accepted on the way is served like any other). When the old generation
was faster anyway, the probe closes that connection unsent and tries again at once (a few tens
of microseconds, not a request through the old generation). The probe still goes through the
shared listener and the whole HTTP stack; it only stops losing a race it caused.

The old workers still win some claims: the first connection queued wakes them, and one can
take it before the prober's accept. So a try makes ``CONNECTIONS`` connections back to back
and claims whichever of them it meets first; a woken old worker usually takes only the first.
Measured (2 workers forked from the zygote, 16 upgrades, other jobs on the 2 cores): tries per
probe median 18 -> 5, the slowest probe 33-42 -> 8-18 tries, time_to_ready's slowest upgrade
158-243 -> 15-25 ms.

The claim is also the only way an unproven generation takes connections: it starts accepting
from the shared listeners once the probe passed (``GenerationServer.serve``). A generation
that fails its probe therefore holds no client but the few its claims met on the way, and it
serves those to the end before it exits (``_main``), so a rollback loses no request.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import socket
from collections.abc import Callable, Sequence

PROBE_HEADER = "x-swapprof-probe"
PROBE_PATH = "/__swapprof__/probe"
NOT_MINE = 409

PER_TRY_S = 5.0  # one try's limit (connect, answer), within the readiness deadline
CONNECTIONS = 3  # a claiming probe's connections per try (see ``_connect``)
# Claims lost to another process in a row before the probe paces its tries (1 ms apart, then
# up to PACE_MAX_S): losing that many means the other process is polling the listener hot.
CLAIM_TRIES = 16
PACE_MAX_S = 0.01
# Given the probe connections' own addresses, accept from the listener until one of them is
# taken; return its address, or None when none was in the queue (someone else took them).
Claim = Callable[[Sequence[object]], object | None]


class ProbeFailed(Exception):
    """The generation's own answer to the probe was not a success."""


async def _connect(
    family: socket.AddressFamily, address: object, timeout: float, claim: Claim | None
) -> tuple[socket.socket, bool]:
    """Connect; claim the connection right after the connect call returns, before yielding to
    the event loop (on loopback the handshake is done by then): (socket, claimed). A claiming
    probe makes ``CONNECTIONS`` connections back to back and claims whichever of them it meets
    first: another acceptor woken by the first one usually takes only that one."""
    loop = asyncio.get_running_loop()
    socks = [_probe_socket(family, address, claim is not None)]
    try:
        give_up = loop.time() + timeout
        # EAGAIN: a Unix listener's backlog is full; such a connect is retried, not awaited
        while (err := socks[0].connect_ex(address)) == errno.EAGAIN and loop.time() < give_up:  # type: ignore[arg-type]
            await asyncio.sleep(0.001)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        errs = [err]
        sock, claimed = socks[0], False
        if claim is not None:
            for _ in range(CONNECTIONS - 1):
                try:
                    extra = _probe_socket(family, address, True)
                except OSError:
                    break  # out of fds, say: the extra connections are a help, never a need
                socks.append(extra)
                errs.append(extra.connect_ex(address))  # type: ignore[arg-type]
                if errs[-1] not in (0, errno.EINPROGRESS):
                    socks.pop().close()
                    errs.pop()
                    break
            names = [s.getsockname() for s in socks]
            taken = claim(names)
            if taken is not None:
                index = names.index(taken)
                sock, err, claimed = socks[index], errs[index], True
            for other in socks:
                if other is not sock:
                    other.close()  # a connection another process took: it reads EOF
            socks = [sock]
            if not claimed:
                # not ours (or, with a full backlog, not even queued: waiting would mean the SYN
                # retransmit, a second or more): the caller gives it up and tries again at once
                return sock, False
        if err:
            await asyncio.wait_for(_writable(loop, sock), timeout)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return sock, claimed


def _probe_socket(family: socket.AddressFamily, address: object, claiming: bool) -> socket.socket:
    """A non-blocking socket whose local address is known before it connects."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_UNIX:
            # an abstract name, so the accepting side can tell this connection from others
            sock.bind(f"\0swapprof-probe-{secrets.token_hex(8)}")
        elif claiming and isinstance(address, tuple):
            sock.bind((address[0], 0, *address[2:]))  # nothing between the connect and the claim
    except BaseException:
        sock.close()
        raise
    return sock


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_writer(sock.fileno())


async def _request(
    family: socket.AddressFamily, address: object, nonce: str, timeout: float, claim: Claim | None
) -> tuple[int, bool]:
    """One probe on a new connection: (HTTP status, whether we claimed the connection)."""
    sock, claimed = await _connect(family, address, timeout, claim)
    if claim is not None and not claimed:
        sock.close()  # another process took it: try again at once, sending nothing
        return NOT_MINE, False
    try:
        if family == socket.AF_UNIX:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        else:
            reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        writer.write(
            f"GET {PROBE_PATH} HTTP/1.1\r\nHost: swapprof-probe\r\n{PROBE_HEADER}: {nonce}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProbeFailed(f"malformed probe answer {status_line[:80]!r}")
        status = int(parts[1])
        body = await asyncio.wait_for(reader.read(4096), timeout)
        if status not in (NOT_MINE,) and not 200 <= status < 300:
            text = body.partition(b"\r\n\r\n")[2][:200].decode("utf-8", "replace")
            raise ProbeFailed(f"probe answered {status}: {text.strip()}")
        return status, claimed
    finally:
        writer.close()


async def probe(
    family: socket.AddressFamily, address: object, nonce: str, deadline: float, claim: Claim | None = None
) -> int:
    """Probe until this generation answers; return how many attempts it took.

    Raise ProbeFailed when our own generation answers with an error or time runs out.
    """
    loop = asyncio.get_running_loop()
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ProbeFailed(f"no answer of our own through the listener after {attempts - 1} attempts")
        if attempts > CLAIM_TRIES:
            await asyncio.sleep(min(PACE_MAX_S, 0.001 * (attempts - CLAIM_TRIES)))
        try:
            status, claimed = await _request(family, address, nonce, min(remaining, PER_TRY_S), claim)
        except TimeoutError as exc:
            if remaining <= PER_TRY_S:  # the try was cut short by the deadline: time ran out
                raise ProbeFailed(
                    f"no answer of our own through the listener after {attempts} attempts "
                    "(the last one ran into the deadline)"
                ) from exc
            raise ProbeFailed(f"probe connection failed: {exc!r}") from exc
        except OSError as exc:
            raise ProbeFailed(f"probe connection failed: {exc!r}") from exc
        if status != NOT_MINE:
            return attempts
        if claimed:
            raise ProbeFailed("a connection this generation accepted was answered as another's")
