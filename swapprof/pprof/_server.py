"""The standalone debug server: threaded, loopback by default, one thread per request.

``serve()`` returns once the socket is bound; ``PprofServer.stop()`` closes it and ends running
profiles early. A client that disconnects stops the profile it asked for.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from swapprof._errors import ListenerError
from swapprof.pprof._heap import start_configured
from swapprof.pprof._http import Router
from swapprof.pprof._messages import MAX_BODY, Request, error, locate
from swapprof.pprof._settings import JsonRoute, Settings

STOP_TIMEOUT_S = 10.0
POLL_S = 0.05  # how soon serve_forever notices stop()


def socket_wait(sock: socket.socket, stop: threading.Event | None = None) -> Callable[[float], bool]:
    """A ``wait(seconds)`` that returns False early when the peer closes ``sock`` (or on ``stop``)."""

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        while (remaining := deadline - time.monotonic()) > 0:
            if stop is not None and stop.is_set():
                return False
            events = poller.poll(min(remaining, 0.5 if stop is not None else remaining) * 1000)
            if not events:
                continue
            try:
                peeked = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return False
            if not peeked:
                return False
            # The client sent more (a pipelined request): stop watching, wait out the rest.
            return not (stop or threading.Event()).wait(max(0.0, deadline - time.monotonic()))
        return True

    return wait


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        url = urlsplit(self.path)
        path = locate(url.path)
        if path is None:
            response = error(404, "Not Found")
        else:
            length = self.headers.get("Content-Length", "0")
            size = min(int(length), MAX_BODY) if length.isdigit() else 0
            body = self.rfile.read(size) if size > 0 else b""
            query = dict(reversed(parse_qsl(url.query, keep_blank_values=True)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            wait = socket_wait(self.connection, self.server.closing)
            response = self.server.router.handle(
                Request(path, query, headers, self.command, body, wait, url.path)
            )
            if self.server.closing.is_set():
                return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.router, self.closing = router, threading.Event()
        self.workers: set[threading.Thread] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Daemon threads (a forgotten server never holds up exit), tracked so stop() can join them.
        self.workers = {t for t in self.workers if t.is_alive()}
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="swapprof-pprof-request",
            daemon=True,
        )
        self.workers.add(worker)
        worker.start()


class PprofServer:
    """A running standalone debug server. ``stop()`` (or leaving a ``with`` block) ends it."""

    def __init__(self, host: str, port: int, settings: Settings) -> None:
        try:
            self._server = _Server((host, port), Router(settings))
        except OSError as exc:
            raise ListenerError(f"cannot listen on {host}:{port}: {exc}") from exc
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self._stop_tracing = start_configured(settings.tracemalloc)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_S,), name="swapprof-pprof", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/debug/pprof/"

    def add_route(self, name: str, route: JsonRoute) -> None:
        """Serve ``route()`` as JSON at /debug/swapprof/<name> from now on."""
        self._server.router.add_route(name, route)

    def stop(self) -> None:
        """Close the listener, end running profiles and wait for the serving thread. Idempotent."""
        if not self._server.closing.is_set():
            self._server.closing.set()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            for worker in list(self._server.workers):
                worker.join(timeout=STOP_TIMEOUT_S)
            self._stop_tracing()

    def __enter__(self) -> PprofServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    routes: Mapping[str, JsonRoute] | None = None,
    max_seconds: int | None = None,
    hz: int | None = None,
    tracemalloc: int | bool | None = None,
) -> PprofServer:
    """Start the standalone debug server on ``host:port`` (port 0 picks a free port).

    The bound address is ``.address``, the index URL ``.url``; ``.stop()`` ends it.
    """
    settings = Settings.resolve(
        token=token, routes=routes, max_seconds=max_seconds, hz=hz, tracemalloc=tracemalloc
    )
    return PprofServer(host, port, settings)
