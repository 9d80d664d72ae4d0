"""A full disk or an fd limit never wedges the master: every upgrade ends, the master keeps
upgrading, and says what it could not write. Real tmpfs, real rlimits, real idle clients."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapprof.testing import ServerProcess
from tests._helpers import http_get


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> None:
    """Write until the file system is full (to the last byte): files filler, filler2."""
    for name, chunk in (("filler", 4096), ("filler2", 1)):
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
        finally:
            os.close(fd)


def test_a_full_run_dir_ends_every_upgrade_and_upgrades_resume_once_space_is_freed(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "run", "1m") as run_dir, ServerProcess(run_dir=run_dir) as server:
        assert server.upgrade()["outcome"] == "success"
        fill(run_dir)
        during = [server.upgrade(timeout=60) for _ in range(3)]  # each returns: none is wedged
        status = server.status()
        (run_dir / "filler").unlink()
        (run_dir / "filler2").unlink()
        after = server.upgrade(timeout=60)
        recent = json.loads(http_get(f"http://{status['debug_address']}/debug/swapprof/upgrades")[2])
        on_disk = [json.loads(line)["id"] for line in (run_dir / "upgrades.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in during] == ["success"] * 3
    assert status["run_dir_write_errors"] >= 1 and status["upgrade_in_progress"] is None
    assert after["outcome"] == "success"
    # the records of the full-disk upgrades are kept in memory, not on the full disk
    in_memory = [r["id"] for r in recent["upgrades"]]
    assert all(r["id"] in in_memory for r in during) and after["id"] in in_memory
    # the file stays whole JSON lines (a short write is cut off again); what fit is there
    assert after["id"] in on_disk and not all(r["id"] in on_disk for r in during), on_disk


def test_a_master_at_its_fd_limit_with_1100_idle_debug_clients_still_upgrades() -> None:
    with ServerProcess() as server:
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (1024, 1024))
        host, port = server.status()["debug_address"].rsplit(":", 1)
        control = str(server.run_dir / "control.sock")
        idle: list[socket.socket] = []
        try:
            for _ in range(1100):
                idle.append(socket.create_connection((host, int(port))))
            for _ in range(300):
                unix = socket.socket(socket.AF_UNIX)
                unix.connect(control)
                idle.append(unix)
            # idle connections over the caps make way for real requests: no wait for a timeout
            records = [server.upgrade(timeout=60) for _ in range(2)]
            status = server.status()
            scraped = http_get(f"http://{host}:{port}/metrics")
        finally:
            for sock in idle:
                sock.close()
    assert [r["outcome"] for r in records] == ["success", "success"], records
    assert status["master_fds"] < 400, status["master_fds"]
    assert scraped[0] == 200 and b"swapprof_upgrades_total" in scraped[2]
