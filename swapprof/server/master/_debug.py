"""The master's debug HTTP endpoint, on the master's event loop (the master stays thread-free).

Routes: ``/metrics`` (Prometheus text format: the master's metrics and, through ``_fleet``,
every worker's, labelled ``worker``), ``/debug/swapprof/upgrades`` (recent upgrade records,
JSON), ``/debug/swapprof/status``; ``/debug/pprof/*`` and the workers' other
``/debug/swapprof/*`` routes go to the serving workers (``_worker_debug``). GET only; loopback
by default; with a token, ``Authorization: Bearer TOKEN`` is required on every route (401
otherwise). A client that hangs up while its answer is being made (a long profile) cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from swapprof._auth import CHALLENGE, bearer_ok
from swapprof.server._fds import describe, parse_bind
from swapprof.server.master._conncap import ConnectionCap
from swapprof.server.master._worker_debug import Reply, WorkerRoutes, plain

if TYPE_CHECKING:
    from swapprof.server.master._child import Generation
    from swapprof.server.master._fleet import Fleet

MAX_HEAD = 16384
MAX_CONNECTIONS = 64
IDLE_TIMEOUT_S = 10.0
LIMIT_RE = re.compile(r"[0-9]{1,6}")  # ASCII digits only: '²'.isdigit() is true, int('²') fails
MASTER_ROUTES = ("upgrades", "status")  # /debug/swapprof/<name> of the master; others are the workers'


class DebugServer:
    def __init__(
        self,
        upgrades: Callable[[], list[dict[str, Any]]],
        status: Callable[[], dict[str, Any]],
        bind: str,
        token: str | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.upgrades, self.status = upgrades, status
        self.fleet = fleet
        self.workers = WorkerRoutes(fleet) if fleet is not None else None
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
        if self.fleet is not None:
            await self.fleet.close()

    def stage(self, gen: Generation, stage: str) -> None:
        """A worker reported ``stage`` (the fleet takes a drained worker's final read)."""
        if self.fleet is not None:
            self.fleet.stage(gen, stage)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        if not self.cap.admit(writer):  # every slot busy answering (idle ones make way)
            reply = plain(503, "too many open debug connections")
        else:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
                self.cap.working(writer)
                head_only = head.split(b" ", 1)[0] == b"HEAD"
                found = await _unless_gone(self.route(head), reader)
                if found is None:  # the client hung up: its answer was cancelled
                    self.cap.release(writer)
                    writer.close()
                    return
                reply = found
            except (asyncio.LimitOverrunError, ValueError):  # readuntil: a head over MAX_HEAD
                reply = plain(431, f"request head over {MAX_HEAD} bytes")
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                self.cap.release(writer)
                writer.close()
                return
        status = reply.status
        headers = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            f"Content-Type: {reply.ctype}",
            f"Content-Length: {len(reply.body)}",
            "Connection: close",
            "X-Content-Type-Options: nosniff",
            *(f"{name}: {value}" for name, value in reply.headers),
        ]
        if status == 401:
            headers.append(f"WWW-Authenticate: {CHALLENGE}")
        try:
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(
                    ("\r\n".join(headers) + "\r\n\r\n").encode() + (b"" if head_only else reply.body)
                )
                await writer.drain()
        finally:
            self.cap.release(writer)
            writer.close()

    async def route(self, head: bytes) -> Reply:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return plain(400, "malformed request line")
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return plain(405, "only GET is supported")
        if self.token is not None:
            auth = next(
                (ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("authorization:")),
                "",
            )
            if not bearer_ok(auth, self.token):
                return plain(401, "missing or wrong bearer token")
        url = urlsplit(target)
        query = parse_qs(url.query)
        if url.path == "/metrics":
            from prometheus_client.exposition import CONTENT_TYPE_LATEST

            if self.fleet is not None:
                return Reply(200, CONTENT_TYPE_LATEST, await self.fleet.exposition())
            from prometheus_client import REGISTRY, generate_latest

            return Reply(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        if url.path == "/debug/swapprof/upgrades":
            limit_text = query.get("limit", ["50"])[0]
            if not LIMIT_RE.fullmatch(limit_text) or int(limit_text) < 1:
                return plain(400, f"limit={limit_text!r}: expected a positive integer")
            records = self.upgrades()[-int(limit_text) :]
            return Reply(200, "application/json", json.dumps({"upgrades": records}).encode())
        if url.path == "/debug/swapprof/status":
            return Reply(200, "application/json", json.dumps(self.status()).encode())
        if self.workers is not None and _for_workers(url.path):
            pairs = parse_qsl(url.query, keep_blank_values=True)
            return await self.workers.answer(url.path, pairs, head=method == "HEAD")
        return plain(404, f"no route {url.path}")


REASONS = {
    200: "OK",
    301: "Moved Permanently",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _for_workers(path: str) -> bool:
    if path == "/debug/pprof" or path.startswith("/debug/pprof/"):
        return True
    name = path[len("/debug/swapprof/") :] if path.startswith("/debug/swapprof/") else ""
    return bool(name) and name not in MASTER_ROUTES


async def _unless_gone(work: Any, reader: asyncio.StreamReader) -> Reply | None:
    """Await ``work``, or cancel it and return None when the client hangs up first."""
    task: asyncio.Task[Reply] = asyncio.ensure_future(work)
    eof = asyncio.ensure_future(reader.read(1))
    try:
        done, _ = await asyncio.wait({task, eof}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done and (eof.exception() is not None or eof.result() == b""):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return None
        return await task  # pipelined bytes (or a read error) are no hang-up: let it finish
    finally:
        eof.cancel()
        task.cancel()
