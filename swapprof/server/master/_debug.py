"""The master's debug HTTP endpoint, on its own event loop (the master stays thread-free).

Routes: ``/metrics`` (Prometheus text format), ``/debug/swapprof/upgrades`` (recent upgrade
records, JSON), ``/debug/swapprof/status``. GET only; loopback by default; with a token,
``Authorization: Bearer TOKEN`` is required (401 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from swapprof._auth import CHALLENGE, bearer_ok
from swapprof.server._fds import describe, parse_bind
from swapprof.server.master._conncap import ConnectionCap

MAX_HEAD = 16384
MAX_CONNECTIONS = 64
IDLE_TIMEOUT_S = 10.0
LIMIT_RE = re.compile(r"[0-9]{1,6}")  # ASCII digits only: '²'.isdigit() is true, int('²') fails


class DebugServer:
    def __init__(
        self,
        upgrades: Callable[[], list[dict[str, Any]]],
        status: Callable[[], dict[str, Any]],
        bind: str,
        token: str | None = None,
    ) -> None:
        self.upgrades, self.status = upgrades, status
        self.cap = ConnectionCap(MAX_CONNECTIONS)
        self.spec = parse_bind(bind)
        self.token = token
        self.address = ""
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        from swapprof.server._fds import bind

        sock = bind(self.spec)
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=MAX_HEAD)
        self.address = describe(sock)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        if not self.cap.admit(writer):  # every slot busy answering (idle ones make way)
            status, ctype, body = 503, "text/plain", b"too many open debug connections\n"
        else:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
                self.cap.working(writer)
                head_only = head.split(b" ", 1)[0] == b"HEAD"
                status, ctype, body = self.route(head)
            except (asyncio.LimitOverrunError, ValueError):  # readuntil: a head over MAX_HEAD
                status, ctype, body = 431, "text/plain", f"request head over {MAX_HEAD} bytes\n".encode()
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                self.cap.release(writer)
                writer.close()
                return
        reason = {
            200: "OK",
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            405: "Method Not Allowed",
            431: "Request Header Fields Too Large",
            503: "Service Unavailable",
        }
        headers = [
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            "X-Content-Type-Options: nosniff",
        ]
        if status == 401:
            headers.append(f"WWW-Authenticate: {CHALLENGE}")
        try:
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(("\r\n".join(headers) + "\r\n\r\n").encode() + (b"" if head_only else body))
                await writer.drain()
        finally:
            self.cap.release(writer)
            writer.close()

    def route(self, head: bytes) -> tuple[int, str, bytes]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return 400, "text/plain", b"malformed request line\n"
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET is supported\n"
        if self.token is not None:
            auth = next(
                (ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("authorization:")),
                "",
            )
            if not bearer_ok(auth, self.token):
                return 401, "text/plain", b"missing or wrong bearer token\n"
        url = urlsplit(target)
        query = parse_qs(url.query)
        if url.path == "/metrics":
            from prometheus_client import REGISTRY, generate_latest
            from prometheus_client.exposition import CONTENT_TYPE_LATEST

            return 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        if url.path == "/debug/swapprof/upgrades":
            limit_text = query.get("limit", ["50"])[0]
            if not LIMIT_RE.fullmatch(limit_text) or int(limit_text) < 1:
                return 400, "text/plain", f"limit={limit_text!r}: expected a positive integer\n".encode()
            records = self.upgrades()[-int(limit_text) :]
            return 200, "application/json", json.dumps({"upgrades": records}).encode()
        if url.path == "/debug/swapprof/status":
            return 200, "application/json", json.dumps(self.status()).encode()
        return 404, "text/plain", f"no route {url.path}\n".encode()
