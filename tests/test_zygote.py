"""Zygote mode (--preload): upgrades fork a warm process instead of exec'ing an interpreter."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from swapprof._process import wait_pid_gone
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.server._cli_format import format_status, format_upgrade
from swapprof.telemetry import read_spans
from swapprof.testing import ServerProcess
from tests._apps import write_faulty_app
from tests._helpers import fd_targets, wait_for


def _env_with(path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(path), env.get("PYTHONPATH", "")) if p)
    return env


def test_forked_upgrades_under_load_lose_nothing_and_pick_up_new_code(tmp_path: Path) -> None:
    app_dir = write_faulty_app(tmp_path / "app")
    (app_dir / "VERSION").write_text("v1")
    args = ["--app-dir", str(app_dir), "--preload", "uvicorn", "--drain-grace", "0.2"]
    with ServerProcess("faultyapp:app", args=args) as server:
        zygote = server.status()["zygote"]
        assert zygote is not None and zygote["serial"] == 1
        loads = [
            LoadGenerator(
                server.address, concurrency=2, mode="keepalive", paths=[("/", 8), ("/slow?ms=100", 1)]
            ),
            LoadGenerator(server.address, concurrency=2, mode="new"),
        ]
        for load in loads:
            load.start()
        try:
            records = [server.upgrade() for _ in range(6)]
            (app_dir / "VERSION").write_text("v2")  # a code change on disk...
            records.append(server.upgrade())
        finally:
            results = [r for load in loads for r in load.stop()]
        import asyncio

        answers = asyncio.run(
            LoadGenerator(server.address, concurrency=1, max_requests=1, paths=[("/version", 1)]).run()
        )
        gen_pid = server.status()["generations"][0]["pid"]
        gen_fds = fd_targets(gen_pid)
        master_objects = set(fd_targets(server.pid).values())
        # sockets and pipes are named by inode, so equal names mean the same object
        shared = [
            t
            for fd, t in gen_fds.items()
            if fd > 2 and t.startswith(("socket:", "pipe:")) and t in master_objects
        ]
    assert [r["outcome"] for r in records] == ["success"] * 7
    assert {r["spawn_mode"] for r in records} == {"fork"}
    assert error_counts(results) == dict.fromkeys(error_counts([]), 0)
    assert answers[0].status == 200  # ...is what the next forked generation serves
    assert all(r["service_gap_ms"] == 0 for r in records)
    # a forked generation shares with the master only the listener and the lifeline pipe
    assert sorted(t.split(":")[0] for t in shared) == ["pipe", "socket"], shared
    assert not [t for t in gen_fds.values() if "inotify" in t]  # the zygote's own watch stays there


def test_version_file_is_read_by_the_new_generation(tmp_path: Path) -> None:
    import asyncio

    app_dir = write_faulty_app(tmp_path / "app")
    (app_dir / "VERSION").write_text("v1")
    with ServerProcess("faultyapp:app", args=["--app-dir", str(app_dir), "--preload", "uvicorn"]) as server:
        probe = LoadGenerator(server.address, concurrency=1, max_requests=1, paths=[("/version", 1)])
        first = asyncio.run(probe.run())
        (app_dir / "VERSION").write_text("v2-new-code")
        assert server.upgrade()["spawn_mode"] == "fork"
        import urllib.request

        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"{server.url}/version", timeout=10
        ) as r:
            body = r.read()
    assert first[0].status == 200
    assert body == b"v2-new-code"


def test_changed_dependency_replaces_the_zygote_first(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "deplib.py").write_text("VALUE = 1\n")
    with ServerProcess(args=["--preload", "deplib"], env=_env_with(lib)) as server:
        first = server.upgrade()
        assert first["spawn_mode"] == "fork" and "zygote" not in first["phases_ms"]
        old_zygote = server.status()["zygote"]
        (lib / "deplib.py").write_text(
            "VALUE = 2  # upgraded\n"
        )  # new size: a new state even within mtime granularity
        second = server.upgrade()
        new_zygote = server.status()["zygote"]
        log = server.log()
    assert second["outcome"] == "success" and second["spawn_mode"] == "fork"
    assert second["phases_ms"]["zygote"] > 0
    assert new_zygote["serial"] == old_zygote["serial"] + 1 and new_zygote["pid"] != old_zygote["pid"]
    assert "is stale" in log
    assert wait_pid_gone(old_zygote["pid"], 10)


def test_a_thread_in_the_zygote_is_refused_naming_it(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "threadlib.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=lambda: time.sleep(3600), name='metrics-pusher', daemon=True).start()\n"
    )
    with ServerProcess(args=["--preload", "threadlib"], env=_env_with(lib)) as server:
        status = server.status()
        record = server.upgrade()
        log = server.log()
    assert status["zygote"] is None
    assert "metrics-pusher" in log and "zygote could not start" in log
    assert record["outcome"] == "success" and record["spawn_mode"] == "exec"  # the exec path still works


def test_forked_generations_and_zygote_exit_when_the_master_is_killed() -> None:
    with ServerProcess(args=["--preload", "uvicorn"]) as server:
        server.upgrade()
        status = wait_for(lambda: (s := server.status())["zygote"]["spare_pid"] and s, what="a spare")
        gen_pid = status["generations"][0]["pid"]
        zygote_pid = status["zygote"]["pid"]
        spare_pid = status["zygote"]["spare_pid"]
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait()  # type: ignore[union-attr]
        assert wait_pid_gone(gen_pid, 15), "forked generation outlived the master"
        assert wait_pid_gone(zygote_pid, 15), "zygote outlived the master"
        assert spare_pid and wait_pid_gone(spare_pid, 15), "spare outlived the master"


def _spare_pid(server: ServerProcess) -> int:
    pid: int = wait_for(lambda: server.status()["zygote"]["spare_pid"], what="a waiting spare")
    return pid


def _spawn_spans(server: ServerProcess, count: int) -> list[dict[str, Any]] | None:
    spans = [s for s in read_spans(server.run_dir / "spans.jsonl") if s["name"] == "spawn"]
    return sorted(spans, key=lambda s: s["start_ns"]) if len(spans) >= count else None


def _reaped(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")  # a zombie would still be listed


def test_an_upgrade_starts_from_the_waiting_spare_and_a_new_spare_follows() -> None:
    with ServerProcess(args=["--preload", "uvicorn"]) as server:
        for _ in range(3):
            spare = _spare_pid(server)
            assert f"spare pid {spare} waiting" in format_status(server.status())
            record = server.upgrade()
            assert record["outcome"] == "success" and record["spare"] is True
            assert record["new_pid"] == spare  # the spare became the generation
            assert "started by fork of the zygote, from the waiting spare" in format_upgrade(record)
            assert server.status()["generations"][0]["pid"] == spare
            assert _spare_pid(server) != spare
        log = server.log()
        spawns = wait_for(lambda: _spawn_spans(server, 3), what="3 spawn spans")
    assert "[spare]" not in log  # a warm spare says nothing
    assert [(s["attributes"]["swapprof.spawn_mode"], s["attributes"]["swapprof.spare"]) for s in spawns] == [
        ("fork", True)
    ] * 3


def test_a_dead_spare_is_reaped_and_the_upgrade_forks_afresh() -> None:
    with ServerProcess(args=["--preload", "uvicorn"]) as server:
        spare = _spare_pid(server)
        os.kill(spare, signal.SIGKILL)
        wait_for(lambda: _reaped(spare), what="the dead spare reaped")
        assert server.status()["zygote"]["spare_pid"] is None
        record = server.upgrade()
        assert record["outcome"] == "success" and record["spawn_mode"] == "fork"
        assert "spare" not in record and record["new_pid"] != spare
        assert _spare_pid(server) not in (spare, record["new_pid"])  # refilled after the upgrade


def test_without_spare_upgrades_fork_on_demand() -> None:
    with ServerProcess(args=["--preload", "uvicorn", "--no-spare"]) as server:
        record = server.upgrade()
        status = server.status()
    assert record["outcome"] == "success" and record["spawn_mode"] == "fork" and "spare" not in record
    assert status["zygote"]["spare_pid"] is None
    assert "no spare waiting" in format_status(status)


def test_a_dead_zygote_is_replaced_once_and_upgrades_go_on() -> None:
    with ServerProcess(args=["--preload", "uvicorn"]) as server:
        _spare_pid(server)
        zygote = server.status()["zygote"]
        os.kill(zygote["pid"], signal.SIGKILL)
        record = server.upgrade()  # the spare cannot be vouched for by a dead zygote: exec
        assert record["outcome"] == "success" and record["spawn_mode"] == "exec"
        assert "started by exec (zygote: " in format_upgrade(record)
        wait_for(lambda: (server.status()["zygote"] or {}).get("serial") == 2, what="zygote 2")
        second = server.upgrade()
        _spare_pid(server)
        log = server.log()
    assert second["outcome"] == "success" and second["spawn_mode"] == "fork"
    # the upgrade and the spare refill both found zygote 1 dead; only one replacement ran
    assert "zygote 2 (pid" in log and "zygote 3" not in log, log
