"""A rollback loses no client request: a new generation takes client connections from the
shared listener only once it proved itself, and serves what it did accept before it exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapprof._process import pid_alive
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess
from tests._apps import set_fault, write_faulty_app

ROLLBACKS = 12


@pytest.mark.parametrize("workers", [1, 2])
def test_probe_failed_rollbacks_under_connection_close_load_lose_nothing(
    tmp_path: Path, workers: int
) -> None:
    app_dir = write_faulty_app(tmp_path / "app")
    args = ["--app-dir", str(app_dir), "--probe-path", "/healthz", "--workers", str(workers)]
    with ServerProcess("faultyapp:app", args=args) as server:
        load = LoadGenerator(server.address, concurrency=4, mode="new").start()
        try:
            set_fault(app_dir, "probe")
            records = [server.upgrade() for _ in range(ROLLBACKS)]
            set_fault(app_dir, "")
            healed = server.upgrade()
        finally:
            results = load.stop()
    assert [r["reason"] for r in records] == ["probe_failed"] * ROLLBACKS
    assert healed["outcome"] == "success"
    assert not any(pid_alive(r["new_pid"]) for r in records)
    assert len(results) > 100  # the load really ran through the rollbacks
    assert error_counts(results) == dict.fromkeys(error_counts([]), 0), error_counts(results)
