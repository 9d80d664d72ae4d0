"""The ASGI and WSGI adapters, called directly and served for real (uvicorn, wsgiref) on port 0."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest

from swapprof.pprof import _cpu, asgi_app, read_profile, wsgi_app
from tests._helpers import http_get as get
from tests._helpers import wait_for


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The wrapped application: answers everything that is not a debug route."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello from the app"})


async def call(
    app: Any, path: str, query: str = "", headers: Iterable[tuple[bytes, bytes]] = (), **scope: Any
) -> tuple[int, dict[str, str], bytes]:
    """Call an ASGI app once, as a server would; returns status, headers, body."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    base = {"type": "http", "method": "GET", "path": path, "root_path": "", "query_string": query.encode()}
    await app({**base, "headers": list(headers), **scope}, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def test_asgi_routes_called_directly() -> None:
    app = asgi_app(routes={"reloads": lambda: {"ok": True}, "later": _async_route}, max_seconds=3)

    async def scenario() -> None:
        status, headers, body = await call(app, "/debug/pprof/cmdline")
        assert status == 200 and b"\x00" in body and headers["x-content-type-options"] == "nosniff"
        status, headers, _ = await call(app, "/debug/pprof/heap", "seconds=x")
        assert status == 400 and headers["x-go-pprof"] == "1"
        assert (await call(app, "/debug/pprof/profile", "seconds=9"))[0] == 400
        assert (await call(app, "/debug/pprof/nope"))[0] == 404
        assert (await call(app, "/elsewhere"))[0] == 404  # not wrapping anything
        status, headers, body = await call(app, "/debug/swapprof/reloads")
        assert (status, headers["content-type"], body.replace(b"\n", b"").replace(b" ", b"")) == (
            200,
            "application/json",
            b'{"ok":true}',
        )
        assert (await call(app, "/debug/swapprof/later"))[2].replace(b" ", b"") == b'{\n"awaited":1\n}'
        # mounted under another prefix (Starlette Mount("/prof", app) passes root_path)
        assert (await call(app, "/prof/cmdline", root_path="/prof"))[0] == 200
        assert (await call(app, "/cmdline", root_path="/prof"))[0] == 200  # older Starlette strips it

    asyncio.run(scenario())


async def _async_route() -> dict[str, int]:
    await asyncio.sleep(0)
    return {"awaited": 1}


def test_asgi_wraps_another_app_and_its_lifespan() -> None:
    app = asgi_app(hello_app, token="t0k")

    async def scenario() -> None:
        assert (await call(app, "/api/users"))[2] == b"hello from the app"
        assert (await call(app, "/debug/other"))[2] == b"hello from the app"  # only pprof/swapprof are ours
        assert (await call(app, "/debug/pprof/"))[0] == 401
        ok = await call(app, "/debug/pprof/", headers=[(b"authorization", b"Bearer t0k")])
        assert ok[0] == 200 and ok[1]["content-type"].startswith("text/html")
        sent: list[dict[str, Any]] = []
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)
        assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

    asyncio.run(scenario())


def test_asgi_disconnect_stops_the_sampler() -> None:
    app = asgi_app(max_seconds=60)

    async def scenario() -> None:
        gone = asyncio.Event()
        messages = [{"type": "http.request", "body": b""}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/debug/pprof/profile",
            "query_string": b"seconds=60",
        }
        request = asyncio.ensure_future(app({**scope, "headers": []}, receive, send))
        while not _cpu.in_use():
            await asyncio.sleep(0.01)
        other = await call(app, "/debug/pprof/goroutine", "debug=1")  # the loop is not blocked
        assert other[0] == 200 and b"goroutine profile" in other[2]
        gone.set()
        await asyncio.wait_for(request, 30)
        assert sent == []  # nobody to answer

    asyncio.run(scenario())
    assert not _cpu.in_use()


@pytest.fixture
def uvicorn_server() -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = asgi_app(hello_app, max_seconds=5)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="test-uvicorn")
    thread.start()
    try:
        wait_for(lambda: server.started, 15)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_asgi_under_uvicorn(uvicorn_server: str) -> None:
    host, port = uvicorn_server.removeprefix("http://").split(":")
    long_profile = socket.create_connection((host, int(port)))
    long_profile.sendall(b"GET /debug/pprof/profile?seconds=5 HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        wait_for(_cpu.in_use, 15)
        assert get(uvicorn_server + "/hello")[2] == b"hello from the app"  # while the profile runs
        assert get(uvicorn_server + "/debug/pprof/profile?seconds=1")[0] == 500
    finally:
        long_profile.close()
    wait_for(lambda: not _cpu.in_use(), 15)  # uvicorn's http.disconnect stopped the sampler
    status, headers, body = get(uvicorn_server + "/debug/pprof/profile?seconds=1")
    assert status == 200 and headers["content-disposition"] == 'attachment; filename="profile"'
    assert read_profile(body).sample_types[1] == ("cpu", "nanoseconds")


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def hello_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from wsgi"]


@pytest.fixture
def wsgi_server() -> Iterator[str]:
    app = wsgi_app(hello_wsgi, token="w", max_seconds=5, routes={"gc": lambda: {"collections": [1, 2, 3]}})
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-wsgiref")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_wsgi_under_wsgiref(wsgi_server: str) -> None:
    auth = {"Authorization": "Bearer w"}
    assert get(wsgi_server + "/anything")[2] == b"hello from wsgi"
    assert get(wsgi_server + "/debug/pprof/")[0] == 401
    status, headers, body = get(wsgi_server + "/debug/pprof/", auth)
    assert status == 200 and b"../swapprof/gc" in body
    assert get(wsgi_server + "/debug/pprof/heap?seconds=1&debug=2", auth)[0] == 400
    assert get(wsgi_server + "/debug/pprof/profile?seconds=50", auth)[0] == 400
    status, headers, body = get(wsgi_server + "/debug/swapprof/gc", auth)
    assert status == 200 and headers["Content-Type"] == "application/json" and b"collections" in body
    status, headers, body = get(wsgi_server + "/debug/pprof/profile?seconds=1&mode=wall", auth)
    assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="profile"'
    profile = read_profile(body)
    assert profile.sample_types == [("samples", "count"), ("wall", "nanoseconds")]
    threads = {dict(labels)["thread_name"] for _stack, labels in profile.samples}
    assert "test-wsgiref" in threads  # wall mode counts idle threads too
    assert "swapprof-cpu-sampler" not in threads
