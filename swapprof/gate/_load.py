"""An asyncio HTTP/1.1 load generator that records every request.

Modes: ``keepalive`` (each client reuses its connection until the server says
``Connection: close``) or ``new`` (a fresh connection per request). Fixed concurrency, or a
fixed total rate spread over the clients. Error kinds: refused, reset, closed (the connection
ended before a full answer), timeout, http_5xx, malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

ERROR_KINDS = ("refused", "reset", "closed", "timeout", "http_5xx", "malformed")


@dataclass(slots=True)
class Result:
    start_ns: int
    end_ns: int
    path: str
    status: int = 0
    error: str | None = None
    generation: int | None = None
    reused: bool = False  # sent on a kept-alive connection (not a fresh one)
    retried: bool = False  # re-sent on a new connection after a stale keep-alive one closed


class _StaleConnection(ConnectionResetError):
    """A reused connection ended before any byte of the answer: the server had closed it idle."""


class Malformed(Exception):
    pass


@dataclass
class Target:
    host: str = "127.0.0.1"
    port: int = 0
    unix: str | None = None

    @classmethod
    def parse(cls, address: str) -> Target:
        if address.startswith("unix:"):
            return cls(unix=address[5:])
        host, _, port = address.rpartition(":")
        return cls(host=host.strip("[]"), port=int(port))

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix:
            return await asyncio.open_unix_connection(self.unix)
        return await asyncio.open_connection(self.host, self.port)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    try:
        status_line = await reader.readline()
    except ConnectionResetError as exc:
        raise _StaleConnection("reset before the status line") from exc
    if not status_line:
        raise _StaleConnection("closed before the status line")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise Malformed(f"bad status line {status_line[:60]!r}")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionResetError("closed inside the headers")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection":
            close = value == b"close"
    if chunked:
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        close = True
    return status, close, body


class LoadGenerator:
    """Drive HTTP load until ``stop()``; the results are kept in ``results``."""

    def __init__(
        self,
        address: str,
        *,
        concurrency: int = 4,
        mode: str = "keepalive",
        paths: Sequence[tuple[str, float]] = (("/", 1.0),),
        rate: float | None = None,
        timeout: float = 10.0,
        max_requests: int | None = None,
        seed: int = 1,
    ) -> None:
        if mode not in ("keepalive", "new"):
            raise ValueError(f"mode {mode!r}: expected keepalive or new")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.target = Target.parse(address)
        self.concurrency = concurrency
        self.mode = mode
        self.paths = [p for p, _ in paths]
        self.weights = [w for _, w in paths]
        self.rate = rate
        self.timeout = timeout
        self.max_requests = max_requests
        self.results: list[Result] = []
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- driving -------------------------------------------------------------------------------
    async def run(self) -> list[Result]:
        await asyncio.gather(*(self._client(i) for i in range(self.concurrency)))
        return self.results

    def start(self) -> LoadGenerator:
        """Run in a background thread with its own event loop."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.run()), name="swapprof-load", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> list[Result]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("load generator did not stop in time")
        return self.results

    def _done(self) -> bool:
        return self._stop.is_set() or (
            self.max_requests is not None and len(self.results) >= self.max_requests
        )

    async def _client(self, index: int) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        interval = self.concurrency / self.rate if self.rate else 0.0
        next_at = time.monotonic() + (interval * index / self.concurrency if interval else 0.0)
        while not self._done():
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            path = self._random.choices(self.paths, self.weights)[0]
            result = Result(time.monotonic_ns(), 0, path, reused=writer is not None)
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(self.target.connect(), self.timeout)
                assert reader is not None and writer is not None
                keep = self.mode == "keepalive"
                extra = "" if keep else "Connection: close\r\n"
                request = f"GET {path} HTTP/1.1\r\nHost: swapprof\r\n{extra}\r\n".encode()
                writer.write(request)
                try:
                    status, close, body = await asyncio.wait_for(_read_response(reader), self.timeout)
                except (_StaleConnection, BrokenPipeError):
                    if not result.reused:
                        raise
                    # As HTTP clients do (Go's net/http, urllib3): a GET sent on a reused
                    # connection that the server closed before answering is sent again, once,
                    # on a new connection. Counted in ``retried``, not hidden.
                    writer.close()
                    result.retried = True
                    fresh_reader, fresh_writer = await asyncio.wait_for(self.target.connect(), self.timeout)
                    reader, writer = fresh_reader, fresh_writer
                    fresh_writer.write(request)
                    status, close, body = await asyncio.wait_for(_read_response(fresh_reader), self.timeout)
                result.status = status
                if status >= 500:
                    result.error = "http_5xx"
                result.generation = _generation(body)
                if close or not keep:
                    writer.close()
                    writer = None
            except ConnectionRefusedError:
                result.error = "refused"
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
                result.error = "closed" if isinstance(exc, asyncio.IncompleteReadError) else "reset"
            except TimeoutError:
                result.error = "timeout"
            except (Malformed, ValueError):
                result.error = "malformed"
            except OSError:
                result.error = "reset"
            result.end_ns = time.monotonic_ns()
            self.results.append(result)
            if result.error is not None and writer is not None:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _generation(body: bytes) -> int | None:
    if not body.startswith(b"{") or b'"generation"' not in body:
        return None
    try:
        value = json.loads(body).get("generation")
    except ValueError:
        return None
    return value if isinstance(value, int) else None


def error_counts(results: Sequence[Result]) -> dict[str, int]:
    counts = Counter(r.error for r in results if r.error)
    return {kind: counts.get(kind, 0) for kind in ERROR_KINDS}
