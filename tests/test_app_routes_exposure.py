"""The app port exposes no debug or metrics route unless asked. A reverse proxy on the same host
(here a plain TCP forwarder) makes every client look like loopback, so a loopback check alone
would hand profiles and metrics to anyone the proxy serves."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from swapprof.testing import ServerProcess
from tests._helpers import http_get

APPS = str(Path(__file__).parent / "apps")
ROUTES = [
    "/metrics",
    "/debug/pprof/",
    "/debug/pprof/heap",
    "/debug/pprof/goroutine?debug=1",
    "/debug/pprof/profile?seconds=1",
    "/debug/swapprof/gc",
    "/debug/swapprof/reloads",
]


@contextmanager
def forwarder(target: str) -> Iterator[str]:
    """A same-host TCP forwarder to ``target`` (host:port); yields its own address."""
    host, port = target.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((host, int(port)))
            sockets.extend((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=pipe, args=(a, b), daemon=True)
                t.start()
                threads.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for t in threads:
            t.join(5)
        for s in sockets:
            s.close()


def test_debug_and_metrics_routes_are_the_apps_own_paths_by_default() -> None:
    with (
        ServerProcess("fastapiapp:app", args=["--app-dir", APPS]) as server,
        forwarder(server.address) as proxied,
    ):
        for route in ROUTES:
            status, _, body = http_get(f"http://{proxied}{route}")
            assert status == 404 and body == b'{"detail":"Not Found"}', (route, status, body[:200])
        assert http_get(f"http://{proxied}/")[0] == 200


def test_with_a_token_every_app_port_route_wants_it_even_from_loopback() -> None:
    args = ["--app-dir", APPS, "--debug-token", "t0k"]
    with ServerProcess("fastapiapp:app", args=args) as server, forwarder(server.address) as proxied:
        for route in ROUTES:
            status, headers, body = http_get(f"http://{proxied}{route}")
            assert status == 401, (route, status, body[:200])
            assert headers.get("www-authenticate") == 'Bearer realm="swapprof"'
        status, _, body = http_get(f"http://{proxied}/debug/swapprof/gc", {"Authorization": "bEaReR t0k"})
        assert status == 200 and body.startswith(b"{")


def test_the_insecure_switch_serves_loopback_clients_without_a_token() -> None:
    args = ["--app-dir", APPS, "--debug-insecure-app-routes"]
    with ServerProcess("fastapiapp:app", args=args) as server:
        status, _, body = http_get(f"{server.url}/debug/pprof/goroutine?debug=1")
        assert status == 200 and b"goroutine" in body, body[:200]
