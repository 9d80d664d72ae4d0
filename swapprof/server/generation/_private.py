"""A worker's private HTTP endpoint: a Unix socket in the run directory only the master uses.

``RUN_DIR/private/gen-N.W.sock`` (the directory 0700, the socket 0600: file permissions are the
access control, so no token is asked here; the master checks the token on its own port). One
request per connection, GET or HEAD, answered with ``Connection: close``:

    /metrics             this worker's prometheus_client registry, in the text format
    /metrics?final=1     the same, answered once the worker has done everything but its
                         telemetry shutdown: the master asks when the worker reports ``drained``,
                         the worker waits for that read (``finish``) before it exits
    /debug/pprof/*, /debug/swapprof/*   the generation's debug app (``swapprof.pprof.asgi_app``
                         with the generation's JSON routes)

Started after READY, so it is never on the switch's critical path; nothing here may take the
worker down (a failure to start is logged, and the master then just has no data for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("swapprof.server")

MAX_HEAD = 16384
HEAD_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 16
FINAL_WAIT_S = 1.0  # how long an exiting worker waits for the master's last read
FINAL_PARK_S = 60.0  # how long a final read may wait for the worker to get there
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class PrivateEndpoint:
    def __init__(self, path: Path, routes: Mapping[str, Callable[[], Any]]) -> None:
        self.path = path
        self.routes = routes
        self._server: asyncio.base_events.Server | None = None
        self._inode: int | None = None
        self._debug_app: Any = None
        self._open = 0
        self._finishing = asyncio.Event()
        self._final_served = asyncio.Event()

    async def start(self) -> bool:
        """Bind and serve; False (logged) when the socket cannot be made."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path.parent, 0o700)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # left by a SIGKILLed namesake
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(self.path))
                os.chmod(self.path, 0o600)
                self._inode = os.stat(self.path).st_ino
                self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=MAX_HEAD)
            except BaseException:
                sock.close()
                raise
        except (OSError, RuntimeError) as exc:
            print(f"swapprof: no private endpoint at {self.path}: {exc}", file=sys.stderr, flush=True)
            return False
        return True

    async def finish(self, wait: float = FINAL_WAIT_S) -> None:
        """Let the master's final read through, wait for it (at most ``wait`` s), then close."""
        self._finishing.set()
        if self._server is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._final_served.wait(), wait)
        self.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                self.path.unlink()  # ours, not a successor's

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        final = False
        try:
            answer: Answer = (503, [], b"too many connections\n")
            if self._open < MAX_CONNECTIONS:
                self._open += 1
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
                    answer, final = await self._answer(head, reader)
                finally:
                    self._open -= 1
            status, headers, body = answer
            lines = [f"HTTP/1.1 {status} -".encode(), *(k + b": " + v for k, v in headers)]
            lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
            if final and status == 200:
                self._final_served.set()
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError, TimeoutError, OSError):
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes, reader: asyncio.StreamReader) -> tuple[Answer, bool]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
            return (400, [], b"GET or HEAD only\n"), False
        headers: list[tuple[bytes, bytes]] = []
        url = urlsplit(parts[1])
        if url.path == "/metrics":
            final = parse_qs(url.query).get("final") == ["1"]
            if final:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finishing.wait(), FINAL_PARK_S)
            return _metrics(), final
        if url.path.startswith(("/debug/pprof", "/debug/swapprof/")):
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
            return await self._debug(parts[0], url.path, url.query, headers, reader), False
        return (404, [], f"no route {url.path}\n".encode()), False

    async def _debug(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[bytes, bytes]],
        reader: asyncio.StreamReader,
    ) -> Answer:
        if self._debug_app is None:
            from swapprof.pprof import asgi_app

            # token "": none here (see the module docstring), whatever SWAPPROF_PPROF_TOKEN says
            self._debug_app = asgi_app(None, token="", routes=dict(self.routes))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": headers,
            "client": None,
            "server": None,
        }
        sent = False
        started: dict[str, Any] = {}
        body = bytearray()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            with contextlib.suppress(OSError):
                while await reader.read(65536):  # EOF: the master dropped the request
                    pass
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self._debug_app(scope, receive, send)
        headers_out = [
            (bytes(k), bytes(v))
            for k, v in started.get("headers", [])
            if bytes(k).lower() != b"content-length"
        ]
        return int(started.get("status", 500)), headers_out, bytes(body)


def _metrics() -> Answer:
    if "prometheus_client" not in sys.modules:  # telemetry not set up (yet, or turned off)
        return 503, [], b"metrics are not ready yet\n"
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    try:
        body = generate_latest(REGISTRY)
    except Exception as exc:  # a failing collector of the app's: an answer, never a crash
        return 500, [], f"collecting metrics failed: {exc!r}\n".encode()
    return 200, [(b"Content-Type", CONTENT_TYPE_LATEST.encode())], body


def endpoint(
    run_dir: str, generation: int, worker: int, routes: Mapping[str, Callable[[], Any]]
) -> PrivateEndpoint | None:
    """This worker's endpoint, or None without a run directory."""
    if not run_dir:
        return None
    from swapprof.server._rundir import RunDir

    return PrivateEndpoint(RunDir(run_dir).private_socket(generation, worker), routes)
