"""The master's client for a worker's private endpoint (``server.generation._private``).

One GET per connection over the worker's Unix socket, the whole exchange bounded by a
timeout and the answer by a size: a wedged or flooding worker costs the master a closed
connection and a ``WorkerUnreachableError``, never a stalled event loop. Closing the
connection early (the timeout, or a cancelled task) is how the worker learns its client left:
a running profile stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from swapprof._errors import SwapprofError

MAX_ANSWER = 256 << 20  # a long CPU profile of a big app stays far below this


class WorkerUnreachableError(SwapprofError):
    """A worker's private endpoint did not answer. ``reason``: ``absent`` (no socket: not up yet,
    or gone), ``timeout``, ``unreachable`` (refused, reset) or ``bad_answer``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class WorkerAnswer:
    status: int
    headers: list[tuple[str, str]]  # as sent, minus the framing ones
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


async def get(
    socket_path: Path, target: str, timeout: float, *, head: bool = False, max_bytes: int = MAX_ANSWER
) -> WorkerAnswer:
    """GET (or HEAD) ``target`` from the worker listening on ``socket_path``."""
    try:
        return await asyncio.wait_for(_exchange(socket_path, target, head, max_bytes), timeout)
    except TimeoutError:
        raise WorkerUnreachableError("timeout", f"no answer within {timeout:g} s") from None
    except FileNotFoundError:
        raise WorkerUnreachableError("absent", f"no socket {socket_path.name}") from None
    except (OSError, EOFError) as exc:
        raise WorkerUnreachableError("unreachable", repr(exc)) from None


async def _exchange(socket_path: Path, target: str, head: bool, max_bytes: int) -> WorkerAnswer:
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=65536)
    try:
        method = "HEAD" if head else "GET"
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        await writer.drain()
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise WorkerUnreachableError("bad_answer", f"no response head: {exc!r}") from None
        lines = raw.decode("latin-1").split("\r\n")
        status_parts = lines[0].split(" ", 2)
        if len(status_parts) < 2 or not status_parts[1].isdigit():
            raise WorkerUnreachableError("bad_answer", f"status line {lines[0][:80]!r}")
        headers, length = [], None
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name, value = name.strip(), value.strip()
            if name.lower() == "content-length" and value.isdigit():
                length = int(value)
            elif name.lower() not in ("connection", "transfer-encoding"):
                headers.append((name, value))
        if length is not None and length > max_bytes:
            raise WorkerUnreachableError("bad_answer", f"answer of {length} bytes over {max_bytes}")
        if head:
            body = b""
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await _until_eof(reader, max_bytes)
        return WorkerAnswer(int(status_parts[1]), headers, body)
    except asyncio.IncompleteReadError as exc:
        raise WorkerUnreachableError("bad_answer", f"answer cut short: {exc!r}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _until_eof(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    body = bytearray()
    while chunk := await reader.read(65536):
        body += chunk
        if len(body) > max_bytes:
            raise WorkerUnreachableError("bad_answer", f"answer over {max_bytes} bytes")
    return bytes(body)
