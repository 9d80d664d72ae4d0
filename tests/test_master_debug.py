"""The master's debug endpoint: loopback, optional bearer token, clear errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from swapprof.testing import ServerProcess

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, token: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with OPENER.open(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_debug_routes_with_token() -> None:
    with ServerProcess(args=["--debug-token", "s3cret"]) as server:
        debug = server.status()["debug_address"]
        assert debug.startswith("127.0.0.1:")  # loopback unless told otherwise
        base = f"http://{debug}"
        assert _get(f"{base}/metrics")[0] == 401
        assert _get(f"{base}/metrics", token="wrong")[0] == 401
        server.upgrade()
        status, ctype, body = _get(f"{base}/metrics", token="s3cret")
        assert status == 200 and ctype.startswith("text/plain")
        assert b"swapprof_upgrades_total{" in body and b"swapprof_generation{" in body
        status, ctype, body = _get(f"{base}/debug/swapprof/upgrades?limit=5", token="s3cret")
        assert status == 200 and ctype == "application/json"
        assert [u["new_generation"] for u in json.loads(body)["upgrades"]] == [2]
        assert _get(f"{base}/debug/swapprof/upgrades?limit=-1", token="s3cret")[0] == 400
        assert _get(f"{base}/debug/swapprof/nothing", token="s3cret")[0] == 404


@pytest.mark.parametrize("value", ["unix:/tmp/x.sock", "nonsense"])
def test_bad_debug_bind_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from swapprof.cli import main

    assert main(["serve", "swapprof.server.demo:app", "--debug-bind", value]) == 2
    assert "error" in capsys.readouterr().err
