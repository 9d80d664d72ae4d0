"""Self-probe: a new generation proves it serves by answering a request through the shared
listener. The old generation shares that listener, so it may accept the probe; it answers 409
(the nonce is not its own) and the probe retries on a new connection."""

from __future__ import annotations

import asyncio
import socket

PROBE_HEADER = "x-swapprof-probe"
PROBE_PATH = "/__swapprof__/probe"
NOT_MINE = 409


class ProbeFailed(Exception):
    """The generation's own answer to the probe was not a success."""


async def _request(family: socket.AddressFamily, address: object, nonce: str, timeout: float) -> int:
    if family == socket.AF_UNIX:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(address)), timeout)
    else:
        assert isinstance(address, tuple)
        host, port = address
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
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
        return status
    finally:
        writer.close()


async def probe(family: socket.AddressFamily, address: object, nonce: str, deadline: float) -> int:
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
        try:
            status = await _request(family, address, nonce, min(remaining, 5.0))
        except (TimeoutError, OSError) as exc:
            raise ProbeFailed(f"probe connection failed: {exc!r}") from exc
        if status != NOT_MINE:
            return attempts
