"""The apps people write, served by ``swapprof serve``: FastAPI, a startproject Django site (ASGI
and WSGI), Flask; upgraded under load without a failed request; objects that are no app refused
(reason app_invalid) at startup and on upgrade; the event loop and HTTP parser asked for are the
ones serving. Real frameworks, real processes, real sockets."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from swapprof._errors import SwapprofError
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess
from tests._helpers import OPENER, http_get, wait_for

APPS = str(Path(__file__).parent / "apps")
UPGRADES = 3
ROUTES_ON = ["--debug-insecure-app-routes"]  # the app-port /metrics and /debug/* checked here

DJANGO_URLS = """
import time

from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt


def hello(request):
    return HttpResponse("hello from django\\n")


@csrf_exempt
def echo(request):
    return HttpResponse(request.body, content_type="application/octet-stream")


def slow(request):
    time.sleep(int(request.GET.get("ms", "100")) / 1000)
    return HttpResponse("slow\\n")


def stream(request):
    return StreamingHttpResponse(f"chunk {i}\\n" for i in range(int(request.GET.get("n", "5"))))


urlpatterns += [path("", hello), path("echo", echo), path("slow", slow), path("stream", stream)]
"""


@pytest.fixture(scope="module")
def django_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``django-admin startproject mysite`` plus four views; the directory to pass as --app-dir."""
    root = tmp_path_factory.mktemp("django")
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(root)], check=True, timeout=120
    )
    with open(root / "mysite" / "urls.py", "a") as urls:
        urls.write(DJANGO_URLS)
    with open(root / "mysite" / "settings.py", "a") as settings:
        settings.write('\nALLOWED_HOSTS = ["*"]\n')  # the load generator sends Host: swapprof
    return root


def _env(**settings: str) -> dict[str, str]:
    return {**os.environ, **{f"SWAPPROF_{k.upper()}": v for k, v in settings.items()}}


def _post(url: str, body: bytes, content_type: str = "application/octet-stream") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with OPENER.open(request, timeout=60) as answer:
        return answer.status, answer.read()


def _serving(server: ServerProcess) -> dict[str, Any]:
    status = server.status()
    return next(g for g in status["generations"] if g["state"] == "serving")


def _upgrades_under_load(server: ServerProcess, paths: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """UPGRADES upgrades while keep-alive and new-connection clients run; assert none failed."""
    loads = [
        LoadGenerator(server.address, concurrency=2, mode="keepalive", paths=paths),
        LoadGenerator(server.address, concurrency=1, mode="new", paths=paths),
    ]
    for load in loads:
        load.start()
    try:
        records = [server.upgrade() for _ in range(UPGRADES)]
    finally:
        results = [r for load in loads for r in load.stop()]
    assert [r["outcome"] for r in records] == ["success"] * UPGRADES, [r.get("detail") for r in records]
    assert error_counts(results) == {k: 0 for k in error_counts([])}, error_counts(results)
    assert {r.status for r in results} == {200}
    assert len(results) > 10 * UPGRADES
    return records


def _check_debug_and_metrics(server: ServerProcess) -> None:
    status, _, body = http_get(server.url + "/metrics")
    assert status == 200 and b"python_gc" in body
    status, _, body = http_get(server.url + "/debug/pprof/")
    assert status == 200


def test_fastapi_with_a_model_and_a_post_body() -> None:
    with ServerProcess("fastapiapp:app", args=[*ROUTES_ON, "--app-dir", APPS]) as server:
        status, body = _post(
            server.url + "/items",
            json.dumps({"name": "pen", "price": 1.5, "tags": ["x"]}).encode(),
            "application/json",
        )
        assert status == 200 and json.loads(body) == {"name": "pen", "total": 3.0, "tags": ["x"]}
        assert http_get(server.url + "/items")[0] == 405
        invalid = urllib.request.Request(server.url + "/items", data=b'{"name": 1}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            OPENER.open(invalid, timeout=60)
        assert info.value.code == 422  # pydantic validated it
        serving = _serving(server)
        assert (serving["interface"], serving["loop"], serving["http"]) == ("asgi", "uvloop", "httptools")
        _upgrades_under_load(server, [("/", 6), ("/slow?ms=150", 1)])
        _check_debug_and_metrics(server)


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_django_startproject_site(django_site: Path, interface: str) -> None:
    app = f"mysite.{interface}:application"
    with ServerProcess(app, args=[*ROUTES_ON, "--app-dir", str(django_site)]) as server:
        status, _, body = http_get(server.url + "/")
        assert (status, body) == (200, b"hello from django\n")
        assert _post(server.url + "/echo", b"x" * 100_000) == (200, b"x" * 100_000)
        status, _, body = http_get(server.url + "/stream?n=3")
        assert (status, body) == (200, b"chunk 0\nchunk 1\nchunk 2\n")
        assert _serving(server)["interface"] == interface
        _upgrades_under_load(server, [("/", 6), ("/slow?ms=150", 1)])
        _check_debug_and_metrics(server)


def test_flask_post_echo_and_streaming_under_upgrades() -> None:
    with ServerProcess("flaskapp:app", args=[*ROUTES_ON, "--app-dir", APPS], env=_env(threads="4")) as server:
        status, _, body = http_get(server.url + "/")
        assert (status, body) == (200, b"hello from flask\n")
        payload = os.urandom(300_000)
        assert _post(server.url + "/echo", payload) == (200, payload)
        status, headers, body = http_get(server.url + "/stream?n=4&ms=5")
        assert status == 200 and body == b"".join(f"chunk {i}\n".encode() for i in range(4))
        assert headers.get("transfer-encoding") == "chunked"  # streamed, not buffered
        assert _serving(server)["interface"] == "wsgi"
        # slow streamed answers span the switches: the drain waits for WSGI requests in flight
        _upgrades_under_load(server, [("/", 6), ("/slow?ms=200", 1), ("/stream?n=10&ms=20", 1)])
        _check_debug_and_metrics(server)
        assert _post(server.url + "/echo", b"after") == (200, b"after")
        _wsgi_requests_in_flight_survive_an_upgrade(server)


def _wsgi_requests_in_flight_survive_an_upgrade(server: ServerProcess) -> None:
    """A streamed answer that has begun, and a request whose body is still arriving, both
    finish on the old generation after the switch: its drain counts them as in flight."""
    host, port = server.address.rsplit(":", 1)
    streaming = socket.create_connection((host, int(port)), timeout=60)
    uploading = socket.create_connection((host, int(port)), timeout=60)
    body = b"y" * 200_000
    try:
        streaming.sendall(b"GET /stream?n=20&ms=25 HTTP/1.1\r\nHost: t\r\n\r\n")
        streamed = streaming.recv(65536)
        assert streamed.startswith(b"HTTP/1.1 200"), streamed  # the app is answering
        uploading.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        uploading.sendall(body[:1000])
        old = _serving(server)["generation"]
        wait_for(lambda: _serving(server)["connections"] >= 2, what="both requests accepted")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            upgrade = pool.submit(server.upgrade)
            wait_for(
                lambda: any(
                    g["generation"] == old and g["state"] == "draining"
                    for g in server.status()["generations"]
                ),
                what="the old generation draining",
            )
            uploading.sendall(body[1000:])
            record = upgrade.result(timeout=120)
        assert record["outcome"] == "success", record
        streamed += _read_all(streaming)
        assert streamed.endswith(b"chunk 19\n\r\n0\r\n\r\n"), streamed[-80:]
        echoed = _read_all(uploading)
        assert echoed.startswith(b"HTTP/1.1 200") and echoed.endswith(body), echoed[:200]
        assert b"connection: close" in echoed.split(b"\r\n\r\n")[0].lower()  # answered while draining
    finally:
        streaming.close()
        uploading.close()


def _read_all(sock: socket.socket) -> bytes:
    """Until the server closes (it does: every answer while draining says Connection: close)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("app", "env", "expected"),
    [
        (
            "notapps:number",
            {},
            "notapps:number is int 42: expected an ASGI app (async callable(scope, receive, send))",
        ),
        (
            "notapps:one_argument",
            {},
            "notapps:one_argument is function one_argument(request): expected an ASGI",
        ),
        ("notapps:asgi_app", {"interface": "wsgi"}, "notapps:asgi_app is an ASGI app"),
        ("flaskapp:app", {"interface": "asgi"}, "flaskapp:app is a WSGI app (Flask <Flask 'flaskapp'>) but"),
    ],
)
def test_startup_refuses_what_is_no_app(tmp_path: Path, app: str, env: dict[str, str], expected: str) -> None:
    server = ServerProcess(app, args=["--app-dir", APPS], env=_env(**env), run_dir=tmp_path)
    with pytest.raises(SwapprofError) as info:
        server.start()
    server.stop()
    text = str(info.value)
    assert "master exited with 2 before it was ready" in text, text  # a usage error: exit 2
    assert f"swapprof: error: {expected}" in text, text  # the one line, from the CLI


def test_upgrade_to_no_app_rolls_back(tmp_path: Path) -> None:
    module = tmp_path / "switchapp.py"
    module.write_text("from flaskapp import app\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (APPS, env.get("PYTHONPATH", "")) if p)
    with ServerProcess("switchapp:app", args=["--app-dir", str(tmp_path)], env=env) as server:
        module.write_text("app = 42\n")
        record = server.upgrade()
        assert (record["outcome"], record["reason"]) == ("rolled_back", "app_invalid"), record
        assert "switchapp:app is int 42: expected an ASGI app" in record["detail"]
        assert http_get(server.url + "/")[2] == b"hello from flask\n"  # the old generation serves on
        module.write_text("from fastapiapp import app\n")
        assert server.upgrade()["outcome"] == "success"
        assert _serving(server)["interface"] == "asgi"


def test_loop_and_parser_as_asked_also_from_a_zygote_spare() -> None:
    env = _env(loop="uvloop", http="httptools")
    with ServerProcess("fastapiapp:app", args=["--app-dir", APPS, "--preload", "fastapi"], env=env) as server:
        assert (_serving(server)["loop"], _serving(server)["http"]) == ("uvloop", "httptools")
        record = server.upgrade()
        assert record["outcome"] == "success" and record.get("spawn_mode") == "fork", record
        assert (_serving(server)["loop"], _serving(server)["http"]) == ("uvloop", "httptools")
    env = _env(loop="asyncio", http="h11")
    with ServerProcess("fastapiapp:app", args=["--app-dir", APPS, "--preload", "fastapi"], env=env) as server:
        assert (_serving(server)["loop"], _serving(server)["http"]) == ("asyncio", "h11")
        record = server.upgrade()
        assert record["outcome"] == "success" and record.get("spawn_mode") == "fork", record
        assert (_serving(server)["loop"], _serving(server)["http"]) == ("asyncio", "h11")
