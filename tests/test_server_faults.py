"""Every failure of a new generation rolls back, and the old one answers throughout."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from swapprof._process import pid_alive, wait_pid_gone
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess
from tests._apps import set_fault, write_faulty_app
from tests._helpers import wait_for


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_faulty_app(tmp_path / "app")


FAULTS = [
    ("import", "import_error", "deliberate import failure"),
    ("crash", "crashed_before_ready", "SIGABRT"),
    ("hang", "ready_timeout", "not READY within 3 s"),
    ("probe", "probe_failed", "/healthz answered 500"),
]


def test_every_fault_rolls_back_while_the_old_generation_serves(app_dir: Path) -> None:
    args = ["--app-dir", str(app_dir), "--ready-timeout", "3", "--probe-path", "/healthz"]
    with ServerProcess("faultyapp:app", args=args) as server:
        load = LoadGenerator(server.address, concurrency=2, paths=[("/", 1)]).start()
        try:
            records = {}
            for fault, _, _ in FAULTS:
                set_fault(app_dir, fault)
                records[fault] = server.upgrade()
            set_fault(app_dir, "")
            healed = server.upgrade()
            status = server.status()
        finally:
            results = load.stop()
    for fault, reason, detail in FAULTS:
        record = records[fault]
        assert record["outcome"] == "rolled_back", (fault, record)
        assert record["reason"] == reason, (fault, record)
        assert detail in record["detail"] + "\n".join(record["tail"]), (fault, record)
        assert "rollback" in record["phases_ms"] and "switch" not in record["phases_ms"]
        assert not pid_alive(record["new_pid"])
    assert "RuntimeError: deliberate import failure" in "\n".join(records["import"]["tail"])
    assert healed["outcome"] == "success" and healed["new_generation"] == 6
    assert [g["generation"] for g in status["generations"]] == [6]
    assert error_counts(results) == dict.fromkeys(error_counts([]), 0)
    assert {r.generation for r in results} == {1, 6}  # the old generation answered throughout


def test_ctl_upgrade_wait_exits_1_and_prints_the_tail_on_rollback(app_dir: Path) -> None:
    import subprocess
    import sys

    with ServerProcess("faultyapp:app", args=["--app-dir", str(app_dir)]) as server:

        def ctl_upgrade_wait() -> subprocess.CompletedProcess[str]:
            argv = [
                sys.executable,
                "-m",
                "swapprof",
                "ctl",
                "--run-dir",
                str(server.run_dir),
                "upgrade",
                "--wait",
            ]
            return subprocess.run(argv, capture_output=True, text=True, timeout=120)

        set_fault(app_dir, "import")
        proc = ctl_upgrade_wait()
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "rolled_back (import_error" in proc.stdout
        assert "| RuntimeError: deliberate import failure" in proc.stdout
        set_fault(app_dir, "")
        proc = ctl_upgrade_wait()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for phase in ("spawn", "import", "ready", "switch", "drain", "exit"):
            assert phase in proc.stdout


def test_old_generation_killed_mid_drain_still_completes_the_upgrade() -> None:
    with ServerProcess(args=["--drain-timeout", "20"]) as server:
        host, port = server.address.rsplit(":", 1)
        slow = socket.create_connection((host, int(port)), timeout=30)
        try:
            slow.sendall(b"GET /slow?ms=15000 HTTP/1.1\r\nHost: t\r\n\r\n")
            old_pid = server.status()["generations"][0]["pid"]
            wait_for(
                lambda: server.status()["generations"][0]["connections"] >= 1, what="slow request in flight"
            )
            server.ctl("upgrade")
            wait_for(
                lambda: any(g["state"] == "draining" for g in server.status()["generations"]), what="draining"
            )
            os.kill(old_pid, signal.SIGKILL)
            assert slow.recv(4096) == b""  # its request dies with it, nothing else does
        finally:
            slow.close()
        status = wait_for(lambda: (s := server.status())["last_upgrade"] and s, what="upgrade end")
        record = status["last_upgrade"]
        assert record["outcome"] == "success"
        assert record["old_exit"] == "killed by SIGKILL"
        assert [g["generation"] for g in status["generations"]] == [2]
        results = __import__("asyncio").run(
            LoadGenerator(server.address, concurrency=1, max_requests=3).run()
        )
        assert [r.generation for r in results] == [2, 2, 2]


def test_serving_generation_that_dies_is_replaced() -> None:
    with ServerProcess() as server:
        pid = server.status()["generations"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        status = wait_for(
            lambda: (s := server.status())["serving_generation"] == 2 and s, what="replacement generation"
        )
        assert status["last_upgrade"]["trigger"] == "recovery"
        results = __import__("asyncio").run(
            LoadGenerator(server.address, concurrency=1, max_requests=3).run()
        )
        assert [r.generation for r in results] == [2, 2, 2]


def test_generations_exit_on_their_own_when_the_master_is_killed() -> None:
    with ServerProcess() as server:
        server.upgrade()
        gen_pid = server.status()["generations"][0]["pid"]
        server.kill()
        assert wait_pid_gone(gen_pid, 15.0), "generation outlived its SIGKILLed master"


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks (1/100 s)


def test_a_generation_stuck_past_the_drain_timeout_is_killed_and_counted() -> None:
    with ServerProcess(args=["--drain-timeout", "1", "--drain-grace", "0.5"]) as server:
        host, port = server.address.rsplit(":", 1)
        busy = socket.create_connection((host, int(port)), timeout=30)
        try:
            gen_pid = server.status()["generations"][0]["pid"]
            cpu_before = _cpu_ticks(gen_pid)
            busy.sendall(b"GET /cpu?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n")  # blocks its event loop
            wait_for(lambda: _cpu_ticks(gen_pid) - cpu_before >= 20, what="the generation burning CPU")
            record = server.upgrade()
        finally:
            busy.close()
        status = server.status()
    assert record["outcome"] == "success"
    assert record.get("forced_kill") is True and record["old_exit"] == "killed by SIGKILL", (
        record["phases_ms"],
        record.get("old_exit"),
        record.get("tail"),
    )
    assert status["forced_kills"] == 1
    assert record["phases_ms"]["switch"] + record["phases_ms"]["drain"] >= 1000  # the whole --drain-timeout


def test_exit_grace_bounds_a_slow_exit_after_the_drain() -> None:
    """--exit-grace: a drained generation whose lifespan shutdown outlasts it is killed, counted,
    and the upgrade says so; the default (5 s) lets the same 2 s shutdown finish."""
    apps = str(Path(__file__).parent / "apps")
    env = {**os.environ, "SLOW_EXIT_S": "2"}
    with ServerProcess("slowexit:app", args=["--app-dir", apps, "--exit-grace", "0.5"], env=env) as server:
        record = server.upgrade()
        assert record["outcome"] == "success" and record.get("forced_kill") is True, record
        assert server.status()["forced_kills"] == 1
    with ServerProcess("slowexit:app", args=["--app-dir", apps], env=env) as server:
        record = server.upgrade()
        assert record["outcome"] == "success" and not record.get("forced_kill"), record
