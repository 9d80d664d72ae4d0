"""`swapprof dashboards push` against a loopback fake of Grafana's API (tests/_grafana_fake.py)."""

from __future__ import annotations

import argparse
import os
import socket
import sys

import pytest

from swapprof._errors import ConfigError
from swapprof.dashboards import (
    GrafanaAuthError,
    GrafanaUnreachableError,
    MissingExtraError,
    build_dashboards,
    push,
)
from swapprof.dashboards._cli import add_parser, run
from tests._grafana_fake import FakeGrafana, GrafanaState

TOKEN = "secret-token"
UPGRADES, RUNTIME = "swapprof-upgrades", "swapprof-runtime"


@pytest.fixture(autouse=True)
def grafana_client() -> None:
    try:
        import grafana_client  # noqa: F401
    except ImportError:
        reason = "grafana-client not installed (pip install 'swapprof[dashboards]')"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI must not skip this test")
        pytest.skip(reason)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_first_push_creates_the_folder_and_both_dashboards() -> None:
    with FakeGrafana() as grafana:
        report = push(grafana.url, TOKEN)
        requests = grafana.state.requests
    assert [(r.method, r.path) for r in requests] == [
        ("GET", "/api/folders"),
        ("POST", "/api/folders"),
        ("GET", f"/api/dashboards/uid/{UPGRADES}"),
        ("POST", "/api/dashboards/db"),
        ("GET", f"/api/dashboards/uid/{RUNTIME}"),
        ("POST", "/api/dashboards/db"),
    ]
    assert {r.headers["authorization"] for r in requests} == {f"Bearer {TOKEN}"}
    assert requests[1].body == {"title": "swapprof", "uid": "swapprof"}
    boards = build_dashboards()
    for request, name in ((requests[3], f"{UPGRADES}.json"), (requests[5], f"{RUNTIME}.json")):
        assert request.body == {
            "dashboard": boards[name],
            "folderUid": "swapprof",
            "overwrite": True,
            "message": "swapprof dashboards push",
        }
    assert report.folder_created and report.folder_uid == "swapprof" and report.changed
    assert [(d.uid, d.change, d.version) for d in report.dashboards] == [
        (UPGRADES, "created", 1),
        (RUNTIME, "created", 1),
    ]
    assert report.dashboards[0].url.startswith(f"{grafana.url}/d/{UPGRADES}/")


def test_a_second_push_writes_nothing_and_an_edited_dashboard_is_overwritten() -> None:
    with FakeGrafana() as grafana:
        push(grafana.url, TOKEN, folder="Platform / swapprof")
        del grafana.state.requests[:]
        again = push(grafana.url, TOKEN, folder="Platform / swapprof")
        assert [r.method for r in grafana.state.requests] == ["GET", "GET", "GET"]
        assert not again.changed and again.folder_uid == "platform-swapprof"
        grafana.state.dashboards[RUNTIME]["dashboard"]["title"] = "edited in the UI"
        edited = push(grafana.url, TOKEN, folder="Platform / swapprof")
        assert grafana.state.dashboards[RUNTIME]["dashboard"]["title"] == "swapprof \u2014 runtime"
    assert [(d.change, d.version) for d in edited.dashboards] == [("unchanged", 1), ("updated", 2)]
    assert "  updated   swapprof-runtime" in "\n".join(edited.lines())


def test_an_existing_folder_with_that_title_is_reused() -> None:
    state = GrafanaState(folders={"abc123": {"id": 4, "uid": "abc123", "title": "swapprof"}})
    with FakeGrafana(state) as grafana:
        report = push(grafana.url, TOKEN)
    assert not report.folder_created and report.folder_uid == "abc123"
    assert ("POST", "/api/folders") not in grafana.calls()
    assert {b["meta"]["folderUid"] for b in state.dashboards.values()} == {"abc123"}


def test_the_token_comes_from_GRAFANA_TOKEN_when_not_given(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    with FakeGrafana() as grafana:
        assert push(grafana.url, env={"GRAFANA_TOKEN": TOKEN}).changed
        os.environ["GRAFANA_TOKEN"] = TOKEN
        try:
            assert run(parser.parse_args(["dashboards", "push", "--url", grafana.url])) == 0
        finally:
            del os.environ["GRAFANA_TOKEN"]
    assert "folder 'swapprof' (uid swapprof) exists" in capsys.readouterr().out


def test_401_and_403_are_auth_errors_that_do_not_echo_the_token() -> None:
    with FakeGrafana() as grafana, pytest.raises(GrafanaAuthError) as unauthorized:
        push(grafana.url, "wrong-token")
    assert unauthorized.value.status == 401 and "GRAFANA_TOKEN" in str(unauthorized.value)
    assert "wrong-token" not in str(unauthorized.value)
    with FakeGrafana(GrafanaState(forbidden=True)) as grafana, pytest.raises(GrafanaAuthError) as forbidden:
        push(grafana.url, TOKEN)
    assert forbidden.value.status == 403 and "Editor" in str(forbidden.value)


def test_an_unreachable_grafana_is_reported_as_such() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(GrafanaUnreachableError, match=r"cannot reach Grafana at .*Connection refused"):
        push(url, TOKEN, timeout=2)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(GrafanaUnreachableError, match="timed out"):
            push(f"http://127.0.0.1:{silent.getsockname()[1]}", TOKEN, timeout=0.3)


@pytest.mark.parametrize(
    "url",
    ["localhost:3000", "ftp://grafana", "http://", "http://grafana:99999", "http://a b", "http://h/#frag"],
)
def test_a_bad_url_is_an_input_error(url: str) -> None:
    with pytest.raises(ConfigError, match="is not a Grafana URL"):
        push(url, TOKEN)


def test_a_password_in_a_bad_url_is_masked() -> None:
    with pytest.raises(ConfigError) as error:
        push("ftp://admin:hunter2@grafana", None)
    assert "hunter2" not in str(error.value)


def test_without_grafana_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grafana_client", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'swapprof\[dashboards\]'"):
        push("http://127.0.0.1:3000", TOKEN)


def test_exit_codes_through_the_swapprof_command(capsys: pytest.CaptureFixture[str]) -> None:
    from swapprof import cli

    try:
        cli.build_parser().parse_args(["dashboards", "export"])
    except SystemExit:
        pytest.skip("swapprof.cli does not route `dashboards` to swapprof.dashboards._cli yet")
    with FakeGrafana() as grafana:
        assert cli.main(["dashboards", "push", "--url", grafana.url, "--token", TOKEN]) == 0
        assert cli.main(["dashboards", "push", "--url", grafana.url, "--token", "wrong"]) == 1
    assert (
        cli.main(["dashboards", "push", "--url", f"http://127.0.0.1:{_closed_port()}", "--token", TOKEN]) == 1
    )
    assert cli.main(["dashboards", "push", "--url", "grafana:3000"]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "Connection refused" in err and "is not a Grafana URL" in err
