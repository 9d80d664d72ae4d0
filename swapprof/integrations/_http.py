"""The recorder's loopback endpoint: ``/metrics`` and ``/debug/swapprof/upgrades``.

Served by the recorder's own loop (``handle()`` when its socket is readable), one connection at
a time, each bounded by ``IO_TIMEOUT_S``: a scrape never reaches the host server's threads and
a stuck client costs the recorder at most that. GET only, ``Connection: close``; bound to
``127.0.0.1:0`` unless told otherwise (``SWAPPROF_METRICS_BIND``); with ``SWAPPROF_DEBUG_TOKEN``
set, ``Authorization: Bearer`` is required.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from swapprof._auth import CHALLENGE, bearer_ok
from swapprof.server._fds import bind, describe, parse_bind

IO_TIMEOUT_S = 1.0
MAX_HEAD = 16384


class Endpoint:
    def __init__(
        self, address: str, upgrades: Callable[[], list[dict[str, Any]]], token: str | None = None
    ) -> None:
        self.sock = bind(parse_bind(address))
        self.sock.setblocking(False)
        self.address = describe(self.sock)
        self.upgrades = upgrades
        self.token = token

    def fileno(self) -> int:
        return self.sock.fileno()

    def handle(self) -> None:
        """Answer one waiting connection (if any); never raises."""
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with contextlib.closing(conn):
            conn.settimeout(IO_TIMEOUT_S)
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                status, ctype, body, extra = self.answer(head)
                lines = [
                    f"HTTP/1.1 {status}",
                    f"Content-Type: {ctype}",
                    f"Content-Length: {len(body)}",
                    "Connection: close",
                    *extra,
                ]
                conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            except (OSError, ValueError):
                return

    def answer(self, head: bytes) -> tuple[str, str, bytes, list[str]]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return "400 Bad Request", "text/plain", b"malformed request line\n", []
        method, target, _ = parts
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"only GET\n", []
        if self.token is not None:
            auth = next(
                (ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("authorization:")),
                "",
            )
            if not bearer_ok(auth, self.token):
                return (
                    "401 Unauthorized",
                    "text/plain",
                    b"missing or wrong bearer token\n",
                    [f"WWW-Authenticate: {CHALLENGE}"],
                )
        path = target.split("?", 1)[0]
        if path == "/metrics":
            from prometheus_client import REGISTRY, generate_latest
            from prometheus_client.exposition import CONTENT_TYPE_LATEST

            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY), []
        if path == "/debug/swapprof/upgrades":
            body = json.dumps({"upgrades": self.upgrades()}).encode()
            return "200 OK", "application/json", body, []
        return "404 Not Found", "text/plain", f"no route {path}\n".encode(), []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
