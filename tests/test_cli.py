"""The command line: usage errors exit 2 with a message, failures exit 1, success 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swapprof.cli import main
from swapprof.testing import ServerProcess


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "swapprof.server.demo:app", "--ready-timeout", "-1"], "must be a positive number"),
        (["serve", "swapprof.server.demo:app", "--drain-timeout", "nan"], "must be a positive number"),
        (["serve", "swapprof.server.demo:app", "--drain-timeout", "soon"], "is not a number"),
        (["serve", "no-colon"], "expected MODULE:ATTRIBUTE"),
        (["serve", "swapprof.server.demo:app", "--bind", "localhost"], "expected HOST:PORT"),
        (["serve", "swapprof.server.demo:app", "--bind", "1.2.3.4:99999"], "outside 0-65535"),
        (["serve", "swapprof.server.demo:app", "--probe-path", "healthz"], "must start with '/'"),
        (["serve", "swapprof.server.demo:app", "--app-dir", "/nonexistent/dir"], "is not a directory"),
        (["serve", "swapprof.server.demo:app", "--no-spare"], "applies only with --preload"),
        (["ctl", "dance"], "invalid choice"),
        (["demo", "--upgrades", "0"], "must be at least 1"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_ctl_without_a_master_exits_1_with_advice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ctl", "--run-dir", str(tmp_path), "status"]) == 1
    err = capsys.readouterr().err
    assert "no swapprof master answers" in err and "--run-dir" in err


def test_serve_exits_1_when_the_first_generation_cannot_start(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "swapprof",
            "serve",
            "no_such_module_xyz:app",
            "--bind",
            "127.0.0.1:0",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "generation 1 did not become ready: import_error" in proc.stderr
    assert "ModuleNotFoundError" in proc.stderr


def test_status_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    with ServerProcess() as server:
        assert main(["ctl", "--run-dir", str(server.run_dir), "status"]) == 0
        table = capsys.readouterr().out
        assert "GEN" in table and "serving" in table and server.address in table
        assert main(["ctl", "--run-dir", str(server.run_dir), "status", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["master_pid"] == server.pid
        gen = status["generations"][0]
        assert {"generation", "pid", "state", "uptime_s", "connections", "fds"} <= set(gen)
        assert gen["fds"] > 3
        assert main(["ctl", "--run-dir", str(server.run_dir), "upgrade", "--wait", "--json"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["outcome"] == "success" and record["new_generation"] == 2
        assert main(["ctl", "--run-dir", str(server.run_dir), "stop", "--wait"]) == 0
        assert server.proc is not None and server.proc.wait(30) == 0
        assert not (server.run_dir / "control.sock").exists()


def test_sigint_stops_everything_gracefully() -> None:
    import signal

    from swapprof._process import wait_pid_gone

    with ServerProcess() as server:
        gen_pid = server.status()["generations"][0]["pid"]
        server.signal(signal.SIGINT)
        assert server.proc is not None and server.proc.wait(60) == 0
        assert wait_pid_gone(gen_pid, 10.0)
        assert not (server.run_dir / "control.sock").exists()
        assert not (server.run_dir / "master.pid").exists()
        assert json.loads((server.run_dir / "state.json").read_text())["stopped"] is True


def test_version() -> None:
    from swapprof import __version__

    proc = subprocess.run(
        [sys.executable, "-m", "swapprof", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == __version__


def test_every_subcommand_module_parses_and_runs_what_the_table_says() -> None:
    from swapprof.cli import COMMANDS, build_parser, subcommand, subcommand_parsers

    parsers = subcommand_parsers(build_parser())
    assert [name for name in parsers if " " not in name] == list(COMMANDS)
    assert {
        "ctl status",
        "ctl upgrade",
        "ctl reload",
        "ctl stop",
        "dashboards export",
        "dashboards push",
    } <= set(parsers)
    assert parsers["ctl upgrade"].prog == "swapprof ctl upgrade"
    flags = {opt for action in parsers["serve"]._actions for opt in action.option_strings}
    assert {"--bind", "--preload", "--no-spare", "--debug-token"} <= flags
    for command in COMMANDS:
        module = subcommand(command)
        assert callable(module.add_parser) and callable(module.run)


def test_ctl_imports_only_the_server_cli_not_the_gate_profiler_or_demo(tmp_path: Path) -> None:
    code = (
        "import sys; from swapprof.cli import main; rc = main(['ctl', '--run-dir', sys.argv[1], 'status']); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['swapprof', 'gate'], ['swapprof', 'pprof'], ['swapprof', '_demo'], ['swapprof', 'dashboards'])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.split(None, 1) == ["1", "[]\n"], proc.stdout + proc.stderr  # not running: exit 1
