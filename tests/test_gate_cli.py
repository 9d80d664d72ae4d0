"""``swapprof bench`` / ``swapprof gate`` arguments, exit codes and report files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from swapprof._errors import ConfigError
from swapprof.gate import write_results
from swapprof.gate._cli import add_parser, make_config, make_target, run_gate
from tests.test_gate_compare import BASE, make_doc


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="swapprof")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def gate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``swapprof gate ARGV`` as cli.py does: ConfigError -> exit 2 with its message."""
    try:
        code = run_gate(parse(["gate", *argv]))
    except ConfigError as exc:
        return 2, str(exc)
    return code, capsys.readouterr().out


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {"base": tmp_path / "base.json", "same": tmp_path / "same.json", "slow": tmp_path / "slow.json"}
    write_results(make_doc(BASE), paths["base"])
    write_results(make_doc([v + 5 for v in BASE]), paths["same"])
    write_results(make_doc(BASE, import_extra=150.0), paths["slow"])
    (tmp_path / "bad.json").write_text('{"schema": "swapprof.bench/1", "samples": ')
    (tmp_path / "other.json").write_text(json.dumps({"schema": "k6/1"}))
    return {k: str(v) for k, v in paths.items()} | {
        "bad": str(tmp_path / "bad.json"),
        "other": str(tmp_path / "other.json"),
    }


def test_gate_exit_codes(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert gate(["--baseline", files["base"], "--current", files["same"]], capsys)[0] == 0
    code, out = gate(["--baseline", files["base"], "--current", files["slow"]], capsys)
    assert code == 1 and "FAIL  time_to_ready" in out and "swapprof gate: FAIL (time_to_ready)" in out
    code, message = gate(["--baseline", files["bad"], "--current", files["same"]], capsys)
    assert code == 2 and message.startswith(files["bad"] + ": not valid JSON")
    code, message = gate(["--baseline", files["base"], "--current", files["other"]], capsys)
    assert code == 2 and "schema 'k6/1' is not a swapprof bench result" in message
    code, message = gate(["--baseline", files["base"], "--current", files["slow"], "--cap", "ttr=1"], capsys)
    assert code == 2 and "unknown metric(s) ttr" in message


def test_gate_writes_its_reports(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "out"
    argv = ["--baseline", files["base"], "--current", files["slow"], "--threshold", "25%"]
    argv += [
        "--markdown",
        str(out / "gate.md"),
        "--junit",
        str(out / "gate.xml"),
        "--html",
        str(out / "gate.html"),
    ]
    assert gate(argv, capsys)[0] == 1
    markdown = (out / "gate.md").read_text()
    assert "regression in time_to_ready" in markdown and "+25%" in markdown
    assert summary.read_text() == "earlier step\n" + markdown + "\n"
    assert '<failure message="time_to_ready:' in (out / "gate.xml").read_text()
    assert (out / "gate.html").read_text().startswith("<!doctype html>")


def test_bench_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="go together"):
        make_target(parse(["bench", "--cmd", "server {port}"]))
    with pytest.raises(ConfigError, match="must contain"):
        make_target(parse(["bench", "--cmd", "server", "--upgrade-cmd", "kill -HUP {pid}"]))
    with pytest.raises(ConfigError, match="for the reference server"):
        make_target(parse(["bench", "--cmd", "s {port}", "--upgrade-cmd", "u", "--app", "a:b"]))
    with pytest.raises(ConfigError, match="is not a directory"):
        make_target(parse(["bench", "--app-dir", str(tmp_path / "nope")]))
    with pytest.raises(ConfigError, match="no load"):
        make_config(parse(["bench", "--clients", "0", "--new-clients", "0"]))
    config = make_config(parse(["bench", "--path", "/a@3", "--path", "/slow?ms=5@1", "--rate", "0"]))
    assert config.load.paths == (("/a", 3.0), ("/slow?ms=5", 1.0)) and config.load.rate == 0
    assert make_config(parse(["bench"])).load.paths == (("/", 9.0), ("/slow?ms=50", 1.0))
    with pytest.raises(SystemExit):
        parse(["bench", "--upgrades", "0"])


def test_a_server_that_cannot_start_is_reported(tmp_path: Path) -> None:
    from swapprof._errors import SwapprofError
    from swapprof.gate._cli import bench

    crash = "{python} -c 'import sys; print(\"no luck on\", sys.argv[1]); sys.exit(3)' {port}"
    args = parse(["bench", "--cmd", crash, "--upgrade-cmd", "true", "--quiet", "--no-yardstick"])
    with pytest.raises(SwapprofError, match=r"exited with 3 .*\n.*no luck on \d+"):
        bench(args)


def test_a_phase_is_a_metric(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    slow = ["--baseline", files["base"], "--current", files["slow"]]
    code, out = gate([*slow, "--metric", "phase:import"], capsys)
    assert code == 1 and "FAIL  phase:import" in out
    assert gate([*slow, "--metric", "phase:spawn", "--cap", "phase:drain=50"], capsys)[0] == 0
    code, message = gate([*slow, "--cap", "phase:nap=1"], capsys)
    assert code == 2 and "unknown metric(s) phase:nap" in message and "phase:NAME" in message
