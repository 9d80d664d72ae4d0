"""In-place reload inside the serving generation, tracked; the generation's debug endpoints."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from swapprof.cli import main
from swapprof.testing import ServerProcess

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

REGISTRY = "HANDLERS = []\n"
LEAKY_APP = """
import pathlib

import registry

VERSION = (pathlib.Path(__file__).parent / "VERSION").read_text().strip()
PAYLOAD = bytearray(200_000)  # each version's payload stays alive through the registry


def handler(payload=PAYLOAD):  # bound at definition: each version keeps its own payload
    return payload


registry.HANDLERS.append(handler)  # the classic leak: the registry outlives every reload


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = VERSION.encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def _get(url: str) -> tuple[int, bytes]:
    try:
        with OPENER.open(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_gc_monitor(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = _get(url + "/debug/swapprof/gc")
        if status == 200 and json.loads(body).get("installed", True) is not False:
            return
        time.sleep(0.05)
    raise AssertionError("the generation's GC monitor never started")


def test_reloads_are_tracked_and_take_effect(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "registry.py").write_text(REGISTRY)
    (app_dir / "leakyapp.py").write_text(LEAKY_APP)
    (app_dir / "VERSION").write_text("v1")
    with ServerProcess(
        "leakyapp:app", args=["--app-dir", str(app_dir), "--debug-insecure-app-routes"]
    ) as server:
        assert _get(server.url + "/") == (200, b"v1")
        _wait_gc_monitor(server.url)  # telemetry set-up after READY allocates too: let it finish
        results = []
        for i in range(5):
            (app_dir / "VERSION").write_text(f"v{i + 2}")
            results.append(server.ctl("reload", wait=True, modules=[])["reload"])
        assert _get(server.url + "/") == (200, b"v6")  # the reloaded code serves
        assert main(["ctl", "--run-dir", str(server.run_dir), "reload", "--wait", "no_such_module"]) == 1
        assert "not imported in this generation: no_such_module" in capsys.readouterr().out
        status, body = _get(server.url + "/debug/swapprof/reloads")
        assert status == 200
        trackers = json.loads(body)["trackers"]
        status, gc_body = _get(server.url + "/debug/swapprof/gc")
        gc_view = json.loads(gc_body)
        assert status == 200 and gc_view["installed"] is True and len(gc_view["generations"]) == 3
        assert _get(server.url + "/debug/pprof/")[0] == 200
        assert _get(server.url + "/debug/pprof/nothing")[0] == 404
    assert [r["outcome"] for r in results] == ["ok"] * 5
    assert [r["modules"] for r in results] == [["leakyapp"]] * 5
    last = results[-1]
    assert last["leaking"] is True, results
    assert 160_000 <= last["bytes_per_reload"] <= 240_000  # 200 kB kept per reload, within 20 %
    assert last["stale_versions"] >= 4
    assert len(trackers) == 1


def test_debug_endpoints_of_a_generation_want_the_token_when_one_is_set() -> None:
    with ServerProcess(args=["--debug-token", "t0k"]) as server:
        assert _get(server.url + "/debug/pprof/")[0] == 401
        request = urllib.request.Request(
            server.url + "/debug/swapprof/gc", headers={"Authorization": "Bearer t0k"}
        )
        with OPENER.open(request, timeout=30) as answer:
            assert answer.status == 200
        assert _get(server.url + "/")[0] == 200  # the app itself wants no token
