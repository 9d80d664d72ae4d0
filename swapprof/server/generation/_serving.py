"""Serve an ASGI app with uvicorn's HTTP protocols on inherited sockets, and drain it well.

Drain policy (the part uvicorn's own shutdown gets wrong for hot restarts):
1. stop accepting: close this process's copies of the listeners (the new generation keeps
   accepting on the same sockets, so no connection is refused);
2. every response from then on carries ``Connection: close``, so busy keep-alive clients
   reconnect -- to the new generation;
3. a connection idle through the whole grace window (no byte received since the switch) is
   closed at the window's end; one that received bytes is never closed under a request;
4. the drain ends when no connection is left, or at ``drain_timeout`` (then all are closed).
Closing an idle keep-alive connection at the instant its next request arrives is how a
rolling restart loses requests; step 3 keeps that window to the end of the grace period.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from swapprof._auth import CHALLENGE, bearer_ok
from swapprof.server._accounting import Interval
from swapprof.server._contract import DEFAULT_HTTP, DEFAULT_THREADS
from swapprof.server._fds import probe_address
from swapprof.server.generation._probe import NOT_MINE, PROBE_HEADER, PROBE_PATH, probe
from swapprof.server.generation._protocol import serving_protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HandoffMiddleware:
    """Answers the self-probe and adds ``Connection: close`` while draining.

    The app-port routes (``metrics_path``, ``/debug/pprof/*``, ``/debug/swapprof/*``) are off
    unless a token is set (then every client must send it) or ``insecure_app_routes`` (then
    loopback clients need none). Off, those paths are the app's own, like any other.
    """

    def __init__(
        self,
        app: ASGIApp,
        generation: int,
        probe_path: str | None,
        metrics_path: str | None = None,
        debug_token: str | None = None,
        insecure_app_routes: bool = False,
    ) -> None:
        self.app = app
        self.debug_token = debug_token
        self.app_routes = debug_token is not None or insecure_app_routes
        self.metrics_path = metrics_path if self.app_routes else None
        self.generation = generation
        self.probe_path = probe_path
        self.nonce = secrets.token_hex(8)
        self.draining = False
        self.in_flight = 0
        self.debug_app: Any = None
        self.debug_routes: dict[str, Callable[[], Any]] = {}
        self.requests: Interval | None = None
        """Set (``--bake-window``): every app request is counted here (``_accounting``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        probe = _header(scope, PROBE_HEADER.encode())
        if probe is not None and scope["path"] == PROBE_PATH:
            await self._answer_probe(probe.decode("latin-1"), scope, receive, send)
            return
        if self.metrics_path is not None and scope["path"] == self.metrics_path:
            if await self._allowed(scope, send):
                await _metrics(send)
            return
        if self.app_routes and scope["path"].startswith(("/debug/pprof", "/debug/swapprof/")):
            if await self._allowed(scope, send):
                await self._debug(scope, receive, send)
            return
        self.in_flight += 1
        try:
            if self.requests is None:
                await self.app(scope, receive, self._closing(send))
            else:
                await self._counted(scope, receive, send, self.requests)
        finally:
            self.in_flight -= 1

    async def _counted(self, scope: Scope, receive: Receive, send: Send, interval: Interval) -> None:
        """The app's answer, counted: its latency (until the app returned), failed when it
        answered 5xx, did not answer, or raised."""
        status = 0

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if self.draining:
                    message = _with_close(message)
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, wrapped)
        except BaseException:
            interval.observe(time.perf_counter() - start, True)
            raise
        interval.observe(time.perf_counter() - start, status == 0 or status >= 500)

    async def _allowed(self, scope: Scope, send: Send) -> bool:
        """With a token: the request must carry it (401 otherwise), from anywhere. Without (the
        insecure switch): loopback clients only (403 otherwise)."""
        if self.debug_token is not None:
            if bearer_ok(_header(scope, b"authorization"), self.debug_token):
                return True
            await _plain(
                send,
                401,
                "send the header Authorization: Bearer <token>\n",
                [(b"www-authenticate", CHALLENGE.encode())],
            )
            return False
        client = scope.get("client")
        if client and client[0] not in ("127.0.0.1", "::1", "localhost"):
            await _plain(
                send, 403, "debug endpoints answer loopback clients only; set --debug-token to allow others\n"
            )
            return False
        return True

    async def _debug(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/debug/pprof/* and /debug/swapprof/{gc,reloads} (``_allowed`` has let the request
        in). The profiler loads on first use."""
        if self.debug_app is None:
            from swapprof.pprof import asgi_app

            self.debug_app = asgi_app(None, token=self.debug_token, routes=dict(self.debug_routes))
        await self.debug_app(scope, receive, send)

    def _closing(self, send: Send) -> Send:
        """``send`` that adds ``Connection: close`` to an answer that starts while draining (also
        one to a request that came before the switch, such as a WSGI upload still arriving)."""

        async def wrapped(message: Message) -> None:
            if self.draining and message["type"] == "http.response.start":
                message = _with_close(message)
            await send(message)

        return wrapped

    async def _answer_probe(self, nonce: str, scope: Scope, receive: Receive, send: Send) -> None:
        if nonce != self.nonce:
            await _plain(send, NOT_MINE, f"generation {self.generation} is not the prober\n")
            return
        if self.probe_path is None:
            await _plain(send, 200, f"generation {self.generation} ready\n")
            return
        status: list[int] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))

        app_scope = {
            **scope,
            "path": self.probe_path,
            "raw_path": self.probe_path.encode(),
            "query_string": b"",
        }
        try:
            await self.app(app_scope, receive, capture)
        except Exception as exc:
            await _plain(send, 500, f"{self.probe_path} raised {exc!r}\n")
            return
        code = status[0] if status else 500
        await _plain(send, 200 if 200 <= code < 300 else 503, f"{self.probe_path} answered {code}\n")


def _with_close(message: Message) -> Message:
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
    headers.append((b"connection", b"close"))
    return {**message, "headers": headers}


async def _metrics(send: Send) -> None:
    """This generation's metrics, in Prometheus text format (prometheus_client's registry)."""
    if "prometheus_client" not in sys.modules:  # telemetry not set up (yet, or turned off)
        await _plain(send, 503, "metrics are not ready yet\n")
        return
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    body = generate_latest(REGISTRY)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", CONTENT_TYPE_LATEST.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def _idle_since(proto: Any, since: float) -> bool:
    """No byte received since ``since`` and no request being answered."""
    cycle = getattr(proto, "cycle", None)
    return bool(getattr(proto, "last_rx", 0.0) < since and (cycle is None or cycle.response_complete))


CLAIM_LIMIT = 64  # connections one claim may accept while looking for the probe's own
ATTACH_TURNS = 3  # loop turns for accepted connections to get their transports (one is enough)


class LifespanFailed(Exception):
    """The app's lifespan startup failed."""


class GenerationServer:
    """One generation's HTTP service on the passed listeners."""

    def __init__(
        self,
        app: ASGIApp,
        sockets: list[socket.socket],
        generation: int,
        probe_path: str | None = None,
        log_level: str = "warning",
        metrics_path: str | None = None,
        debug_token: str | None = None,
        insecure_app_routes: bool = False,
        interface: str = "asgi",
        threads: int = DEFAULT_THREADS,
        http: str = DEFAULT_HTTP,
    ) -> None:
        """``interface``: ``asgi``, or ``wsgi`` (``app`` then runs in a pool of ``threads``, see
        ``_wsgi``); ``http``: uvicorn's parser name (``auto``, ``h11``, ``httptools``)."""
        if interface == "wsgi":
            from swapprof.server.generation._wsgi import wsgi_adapter

            app = wsgi_adapter(app, threads)  # type: ignore[arg-type]
        self.interface = interface
        self.middleware = HandoffMiddleware(
            app, generation, probe_path, metrics_path, debug_token, insecure_app_routes
        )
        self.sockets = sockets
        self.config = uvicorn.Config(
            self.middleware,
            interface="asgi3",
            http=http,
            lifespan="auto",
            log_level=log_level,
            access_log=False,
            timeout_keep_alive=5,
            proxy_headers=False,
            server_header=False,
        )
        self.config.load()
        self.state = ServerState()
        self.servers: list[asyncio.base_events.Server] = []
        self._parked: list[socket.socket] = []  # copies of the listeners while parked
        self.lifespan: Any = None
        self._claimed: set[asyncio.Task[Any]] = set()
        self._protocol = serving_protocol(self.config.http_protocol_class)

    @property
    def http(self) -> str:
        """The parser serving (``h11`` or ``httptools``), ``auto`` resolved."""
        return "httptools" if "httptools" in self.config.http_protocol_class.__module__ else "h11"

    @property
    def connections(self) -> int:
        return len(self.state.connections)

    async def start(self) -> None:
        """Run the app's lifespan startup. Nothing is accepted from the shared listeners yet:
        until the self-probe passes, only the probe's claims take connections (``serve``)."""
        for sock in self.sockets:
            # before any claim: a blocking accept() on a queue another process emptied would
            # stop this event loop until the next connection arrives (two workers proving at once)
            sock.setblocking(False)
        self.lifespan = self.config.lifespan_class(self.config)
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            raise LifespanFailed("the app's lifespan startup failed (see its output)")

    async def serve(self) -> None:
        """Proven: accept client connections from the shared listeners from now on."""
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            self.servers.append(await loop.create_server(self._new_protocol, sock=sock, backlog=2048))

    def _new_protocol(self) -> asyncio.Protocol:
        proto: asyncio.Protocol = self._protocol(
            config=self.config,
            server_state=self.state,
            app_state=self.lifespan.state,
            _loop=asyncio.get_running_loop(),
        )
        return proto

    def claim(self, listener: socket.socket, peers: Sequence[object]) -> object | None:
        """Accept from ``listener`` now, until a connection from one of ``peers`` is taken;
        serve all that were accepted. Return that peer, None when none was met (``_probe``)."""
        loop = asyncio.get_running_loop()
        if listener.gettimeout() != 0.0:  # no syscall when ``start`` made it non-blocking already
            listener.setblocking(False)  # never wait in accept(): an empty queue means "not ours"
        for _ in range(CLAIM_LIMIT):
            try:
                conn, address = listener.accept()
            except OSError:  # BlockingIOError: the queue is empty, someone else took it
                return None
            peer: object = address
            conn.setblocking(False)
            task = loop.create_task(loop.connect_accepted_socket(self._new_protocol, conn))
            self._claimed.add(task)
            task.add_done_callback(self._claim_done)
            if peer in peers:
                return peer
        return None

    def _claim_done(self, task: asyncio.Task[Any]) -> None:
        self._claimed.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"swapprof: serving a claimed connection failed: {task.exception()!r}", file=sys.stderr)

    async def self_probe(self, timeout: float) -> int:
        """Probe every listener through the shared socket; return the attempts it took."""
        deadline = asyncio.get_running_loop().time() + timeout
        attempts = 0
        for sock in self.sockets:
            family, address = probe_address(sock)
            claim = functools.partial(self.claim, sock)
            attempts += await probe(family, address, self.middleware.nonce, deadline, claim)
        return attempts

    async def stop_accepting(self) -> None:
        """Stop taking connections from the shared listeners, losing none already taken.

        asyncio accepts in one loop turn and builds each connection's transport in a task on
        the next; closing the Server in between makes those tasks fail (``Server._attach``
        asserts it is open) and the kernel resets connections the client saw accepted. So:
        stop watching the listeners, let the accepted connections attach, then close.
        """
        self.middleware.draining = True
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for sock in server.sockets or ():
                loop.remove_reader(sock.fileno())
        for _ in range(ATTACH_TURNS):
            await asyncio.sleep(0)
        for server in self.servers:
            server.close()

    async def park(self) -> None:
        """Stop accepting as ``stop_accepting`` does, but keep a copy of every listener, so
        ``resume`` can accept again on the same sockets (the bake window's parked generation)."""
        self._parked = [sock.dup() for sock in self.sockets]
        await self.stop_accepting()

    async def resume(self) -> None:
        """Accept again on the listeners ``park`` kept; answers no longer say ``Connection: close``."""
        if not self._parked:
            return
        self.sockets, self._parked, self.servers = self._parked, [], []
        self.middleware.draining = False
        await self.serve()

    async def drain(self, grace: float, timeout: float) -> dict[str, int]:
        """Wait for connections to finish (policy in the module docstring); return counts."""
        start = time.monotonic()
        at_switch = self.connections
        closed_idle = 0
        forced = 0
        while self.state.connections:
            now = time.monotonic()
            if now - start >= timeout:
                for proto in list(self.state.connections):
                    forced += 1
                    proto.transport.close()
                break
            if now - start >= grace and self.middleware.in_flight == 0:
                for proto in list(self.state.connections):
                    if _idle_since(proto, start):
                        closed_idle += 1
                        proto.shutdown()
            await asyncio.sleep(0.01)
        for task in list(self.state.tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        return {"connections_at_switch": at_switch, "closed_idle": closed_idle, "forced_closed": forced}

    async def shutdown_lifespan(self) -> None:
        if self.lifespan is not None:
            await self.lifespan.shutdown()
