"""The master's debug endpoint: loopback, optional bearer token, clear errors."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

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


def test_counters_exist_at_zero_before_their_first_event() -> None:
    """A dashboard panel shows 0, not "No data", and increase() sees the first kill."""
    with ServerProcess() as server:
        base = f"http://{server.status()['debug_address']}"
        status, _, body = _get(f"{base}/metrics")
        assert status == 200
        text = body.decode()
        assert re.search(r"^swapprof_forced_kills_total(\{[^}]*\})? 0\.0$", text, re.M), text[:3000]
        for outcome, reason in (("rolled_back", "probe_failed"), ("success", "ok")):
            series = rf'^swapprof_upgrades_total\{{[^}}]*outcome="{outcome}",reason="{reason}"\}} 0\.0$'
            assert re.search(series, text, re.M), (outcome, reason)


def test_upgrade_text_says_the_old_generation_was_killed() -> None:
    from swapprof.server._cli_format import format_upgrade

    record = {
        "id": 3,
        "outcome": "success",
        "phases_ms": {},
        "forced_kill": True,
        "old_exit": "killed by SIGKILL",
    }
    assert "was killed (SIGKILL)" in format_upgrade(record)
    assert "killed" not in format_upgrade({**record, "forced_kill": False, "old_exit": "exited with code 0"})


@pytest.mark.parametrize("bind", ["0.0.0.0:0", "[::]:0"])
def test_a_non_loopback_debug_bind_without_a_token_is_a_usage_error(
    bind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from swapprof.cli import main

    assert main(["serve", "swapprof.server.demo:app", "--debug-bind", bind]) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_the_token_comes_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    with ServerProcess(args=["--debug-token-file", str(token_file)]) as server:
        base = f"http://{server.status()['debug_address']}"
        assert _get(f"{base}/metrics")[0] == 401
        assert _get(f"{base}/metrics", token="from-a-file")[0] == 200
        assert "--debug-token on the command line" not in server.log()


def test_a_token_on_the_command_line_warns() -> None:
    with ServerProcess(args=["--debug-token", "visible"]) as server:
        assert "--debug-token on the command line is visible" in server.log()


def test_a_missing_token_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from swapprof.cli import main

    assert main(["serve", "swapprof.server.demo:app", "--debug-token-file", str(tmp_path / "none")]) == 2
    assert "--debug-token-file" in capsys.readouterr().err
