"""swapprof's WSGI bridge (swapprof/server/generation/_wsgi.py) against PEP 3333: a plain WSGI
app and real frameworks (Flask, a startproject Django site) served by real ``swapprof serve``
processes on port 0, and the environ and ``wsgi.input`` on their own."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swapprof.server.generation._wsgi import FLUSH_BYTES, PREREAD, wsgi_adapter
from swapprof.server.generation._wsgi_environ import WSGIInput, build_environ
from swapprof.testing import ServerProcess
from tests._helpers import OPENER, http_get, wait_for

APPS = str(Path(__file__).parent / "apps")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """``wsgiedge:app`` served with 4 threads; the file its events are logged to."""
    log = tmp_path_factory.mktemp("wsgiedge") / "events.log"
    log.touch()
    env = {**os.environ, "WSGIEDGE_LOG": str(log), "SWAPPROF_THREADS": "4"}
    env.pop("SWAPPROF_WSGI_ADAPTER", None)
    with ServerProcess("wsgiedge:app", args=["--app-dir", APPS, "--interface", "wsgi"], env=env) as server:
        yield server, log


def _raw(server: ServerProcess, request: bytes) -> tuple[bytes, bytes]:
    """Send ``request`` (which says ``Connection: close``); (head, body) of the answer."""
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(request)
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/octet-stream")
    with OPENER.open(request, timeout=120) as answer:
        return answer.status, answer.read()


def _events(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_environ_query_string_and_repeated_headers(edge: tuple[ServerProcess, Path]) -> None:
    server, _ = edge
    request = (
        b"GET /environ?a=1&b=%C3%A9&a=2 HTTP/1.1\r\nHost: example.test:8080\r\n"
        b"X-Repeat: one\r\nX-Repeat: two\r\nX_Sneaky: dropped\r\nContent-Type: text/x-test\r\n"
        b"Connection: close\r\n\r\n"
    )
    head, body = _raw(server, request)
    assert head.startswith(b"HTTP/1.1 200"), head
    environ = json.loads(body)
    host, port = server.address.rsplit(":", 1)
    assert environ["REQUEST_METHOD"] == "GET"
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/environ")
    assert environ["QUERY_STRING"] == "a=1&b=%C3%A9&a=2"
    assert environ["HTTP_X_REPEAT"] == "one,two"
    assert "HTTP_X_SNEAKY" not in environ  # a '_' header could pass for X-Sneaky: dropped
    assert environ["CONTENT_TYPE"] == "text/x-test" and "HTTP_CONTENT_TYPE" not in environ
    assert environ["HTTP_HOST"] == "example.test:8080"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == (host, port)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1" and environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http" and environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.multithread"] is True and environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["has_file_wrapper"] and environ["errors_writes"]


def test_answer_headers_write_callable_and_file_wrapper(edge: tuple[ServerProcess, Path]) -> None:
    server, _ = edge
    head, body = _raw(server, b"GET /headers HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert head.lower().count(b"set-cookie:") == 2 and b"two cookies" in body
    status, _, body = http_get(server.url + "/write")
    assert (status, body) == (200, b"one two three")
    status, _, body = http_get(server.url + "/file?n=300")
    assert (status, body) == (200, bytes(range(256)) * 300)


@pytest.mark.parametrize("how", ["read", "sized", "readline", "readline-limit", "readlines", "iter"])
def test_a_large_upload_read_every_way(edge: tuple[ServerProcess, Path], how: str) -> None:
    """10 MB of lines, far more than is read before the app runs (PREREAD) or in one pull."""
    server, _ = edge
    line = b"0123456789" * 19 + b"\n"  # 191 bytes: lines straddle every chunk border
    body = line * (10_000_000 // len(line))
    status, answer = _post(server.url + f"/read?how={how}", body)
    facts = json.loads(answer)
    assert status == 200
    assert (facts["size"], facts["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    if how in ("readline", "readlines", "iter"):
        assert (facts["lines"], facts["longest"]) == (len(body) // len(line), len(line))
    if how == "readline-limit":
        assert facts["longest"] == 100


def test_a_chunked_upload(edge: tuple[ServerProcess, Path]) -> None:
    server, _ = edge
    parts = [os.urandom(40_000) for _ in range(5)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    head, answer = _raw(
        server,
        b"POST /read HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunked,
    )
    assert head.startswith(b"HTTP/1.1 200"), head
    assert json.loads(answer)["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_a_streamed_answer_starts_before_the_app_ends(
    edge: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    """The first chunk reaches the client while the app still waits for the gate to open."""
    server, _ = edge
    gate = tmp_path / "gate"
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(
            b"GET /stream?n=3&gate=%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % bytes(gate)
        )
        first = b""
        while b"0:" not in first:
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert b"1:" not in first and not gate.exists()
        gate.touch()
        rest = b"".join(iter(lambda: sock.recv(65536), b""))
    assert (first + rest).endswith(b"2:........\r\n0\r\n\r\n"), first + rest


def test_a_large_streamed_answer(edge: tuple[ServerProcess, Path]) -> None:
    """80 chunks of 64 KiB: more than FLUSH_BYTES, so the app's thread waits for the writes."""
    server, _ = edge
    status, headers, body = http_get(server.url + "/stream?n=80&size=65536")
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert len(body) == 80 * 65536 > 10 * FLUSH_BYTES
    assert body.startswith(b"0:...") and b"79:" in body[-65536:]


def test_start_response_with_exc_info(edge: tuple[ServerProcess, Path]) -> None:
    server, log = edge
    status, _, body = http_get(server.url + "/exc-info")  # before any body: the status is replaced
    assert (status, body) == (503, b"replaced\n")
    status, _, body = http_get(server.url + "/exc-info-late")  # after: start_response re-raises
    assert (status, body) == (200, b"partial rest\n")
    assert "reraised late" in _events(log)


def test_close_is_called_also_on_errors_and_disconnects(edge: tuple[ServerProcess, Path]) -> None:
    server, log = edge
    status, _, body = http_get(server.url + "/close?name=plain")
    assert (status, body) == (200, b"closed after this\n")
    assert "close plain" in _events(log)  # written before the answer's end: no wait needed
    status, _, _ = http_get(server.url + "/close?name=raising&mode=raise")
    assert status == 500  # nothing was sent yet: the bytes collected are dropped
    assert "close raising" in _events(log)
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:  # an endless answer
        sock.sendall(b"GET /close?name=endless&mode=endless HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    wait_for(lambda: "close endless" in _events(log), what="close() after the client went away")
    assert http_get(server.url + "/environ")[0] == 200


def test_an_app_error_is_a_500_and_the_server_serves_on(edge: tuple[ServerProcess, Path]) -> None:
    server, _ = edge
    for path in ("/raise", "/raise-after-start"):
        status, _, body = http_get(server.url + path)
        assert (status, body) == (500, b"Internal Server Error")
    assert "wsgiedge raised before start_response" in server.log()  # uvicorn logged the traceback
    status, _, body = http_get(server.url + "/write")
    assert (status, body) == (200, b"one two three")


def test_flask_echoes_a_large_upload_exactly() -> None:
    env = {**os.environ}
    env.pop("SWAPPROF_WSGI_ADAPTER", None)
    with ServerProcess("flaskapp:app", args=["--app-dir", APPS], env=env) as server:
        payload = os.urandom(3_000_000)
        assert _post(server.url + "/echo", payload) == (200, payload)
        status, headers, body = http_get(server.url + "/stream?n=50")
        assert (status, headers.get("transfer-encoding")) == (200, "chunked")
        assert body == b"".join(b"chunk %d\n" % i for i in range(50))


DJANGO_URLS = """
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def echo(request):
    return HttpResponse(request.body, content_type="application/octet-stream")


def stream(request):
    return StreamingHttpResponse(b"%d" % i * 1000 for i in range(int(request.GET["n"])))


urlpatterns += [path("echo", echo), path("stream", stream)]
"""


def test_django_echoes_a_large_upload_and_streams(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(tmp_path)], check=True, timeout=120
    )
    with open(tmp_path / "mysite" / "urls.py", "a") as urls:
        urls.write(DJANGO_URLS)
    with open(tmp_path / "mysite" / "settings.py", "a") as settings:
        settings.write('\nALLOWED_HOSTS = ["*"]\nDATA_UPLOAD_MAX_MEMORY_SIZE = None\n')
    env = {**os.environ}
    env.pop("SWAPPROF_WSGI_ADAPTER", None)
    with ServerProcess("mysite.wsgi:application", args=["--app-dir", str(tmp_path)], env=env) as server:
        payload = os.urandom(2_500_000)
        assert _post(server.url + "/echo", payload) == (200, payload)
        status, _, body = http_get(server.url + "/stream?n=200")
        assert status == 200 and body == b"".join(b"%d" % i * 1000 for i in range(200))


# ---------------------------------------------------------------- in-process: environ, input


def _scope(**extra: Any) -> dict[str, Any]:
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "https", "path": "/app/x/é",
        "query_string": b"q=%20", "root_path": "/app", "headers": [(b"host", b"h.test")],
        "client": ("10.0.0.1", 5555), "server": None,
    }  # fmt: skip
    scope.update(extra)
    return scope


def test_environ_root_path_and_a_server_without_a_port() -> None:
    environ = build_environ(_scope())
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/x/\xc3\xa9")  # bytes as latin-1
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("h.test", "443")
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("10.0.0.1", "5555")
    environ = build_environ(_scope(headers=[(b"host", b"h.test:81")]))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("h.test", "81")
    assert "CONTENT_LENGTH" not in environ and environ["QUERY_STRING"] == "q=%20"


def test_input_reads_across_fetches() -> None:
    pieces = [b"ab\ncd", b"ef\n", b"", b"g"]

    def fetch() -> tuple[bytes, bool]:
        return pieces.pop(0), bool(pieces)

    stream = WSGIInput(b"12\n", True, fetch)
    assert stream.readline() == b"12\n"
    assert stream.readline() == b"ab\n"
    assert stream.read(3) == b"cde"
    assert stream.readline(1) == b"f"
    assert list(stream) == [b"\n", b"g"]
    assert stream.read() == b"" and stream.readline() == b"" and stream.readlines() == []


def test_the_adapter_switch() -> None:
    assert type(wsgi_adapter(lambda e, s: [], 1)).__name__ == "WSGIBridge"
    assert type(wsgi_adapter(lambda e, s: [], 1, "a2wsgi")).__module__.startswith("a2wsgi")
    with pytest.raises(ValueError, match="SWAPPROF_WSGI_ADAPTER='nope'"):
        wsgi_adapter(lambda e, s: [], 1, "nope")
    assert PREREAD >= 1024
