"""The bake window on real processes: a version that regresses in errors or latency is rolled
back to the parked old generation under load without a connection error; a good one passes; too
little traffic follows the policy; an upgrade asked for during a bake waits; an old generation
killed while parked leaves the new one serving."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from swapprof._process import pid_alive
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.testing import ServerProcess
from tests._apps import set_fault, write_faulty_app
from tests._helpers import wait_for

CONNECTION_ERRORS = ("refused", "reset", "closed", "timeout", "malformed")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return write_faulty_app(tmp_path / "app")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def _states(server: ServerProcess) -> dict[tuple[int, int], str]:
    return {(g["generation"], g["worker"]): g["state"] for g in server.status()["generations"]}


def _old_window_filled(load: LoadGenerator, requests: int) -> None:
    """Wait until the load has made ``requests`` requests (the old generation's window fills)."""
    start = len(load.results)
    wait_for(lambda: len(load.results) >= start + requests, 60, f"{requests} requests")


def _regression(
    app_dir: Path, fault: str, workers: int
) -> tuple[dict[str, Any], dict[str, int], ServerProcess]:
    args = ["--app-dir", str(app_dir), "--bake-window", "5", "--workers", str(workers)]
    with ServerProcess("faultyapp:app", args=args) as server:
        old_pids = set(server.state["serving_pids"])
        load = LoadGenerator(server.address, concurrency=24, rate=150).start()
        try:
            _old_window_filled(load, 300)
            set_fault(app_dir, fault)
            record = server.upgrade()
            set_fault(app_dir, "")
            after = len(load.results)
            wait_for(lambda: len(load.results) >= after + 50, 30, "requests after the rollback")
            status = server.status()
        finally:
            results = load.stop()
        served_after = {r.generation for r in results[after + 20 :] if r.generation is not None}
    assert status["serving_generation"] == 1
    assert {g["pid"] for g in status["generations"] if g["state"] == "serving"} == old_pids
    assert served_after == {1}, "the old generation serves again"
    assert not any(pid_alive(p) for p in record["new_pids"])
    errors = error_counts(results)
    assert {k: errors[k] for k in CONNECTION_ERRORS} == dict.fromkeys(CONNECTION_ERRORS, 0), errors
    return record, errors, server


def test_an_error_regression_is_rolled_back_to_the_parked_generation(app_dir: Path) -> None:
    record, errors, _ = _regression(app_dir, "errors", workers=2)
    bake = record["bake"]
    assert (record["outcome"], record["reason"], bake["verdict"]) == ("rolled_back", "bake_errors", "fail")
    assert bake["decided_ms"] < 5000, "an early verdict, before the window's end"
    assert bake["new"]["failed"] > 0 and bake["old"]["failed"] == 0
    assert bake["old"]["requests"] >= 50 and bake["errors_p"] < 0.001
    assert bake["resumed_ms"] >= bake["decided_ms"] - 1
    assert bake["handback_overlap_ms"] >= 0, "the old accepted again before the new stopped"
    assert record["service_gap_ms"] == 0
    assert "bake" in record["phases_ms"] and "rollback" in record["phases_ms"]
    assert bake["parked_rss_kb"] > 0
    assert 0 < errors["http_5xx"] <= bake["new"]["failed"] + 20


def test_a_latency_regression_is_rolled_back(app_dir: Path) -> None:
    record, errors, _ = _regression(app_dir, "slow", workers=1)
    bake = record["bake"]
    assert (record["outcome"], record["reason"]) == ("rolled_back", "bake_latency")
    assert bake["new"]["median_ms"] > 80 > bake["old"]["median_ms"]
    assert bake["latency_p"] < 0.001 and bake["decided_ms"] < 5000
    assert errors["http_5xx"] == 0


def test_a_good_version_passes_and_the_parked_generation_exits(app_dir: Path) -> None:
    args = ["--app-dir", str(app_dir), "--bake-window", "1.5", "--bake-min-requests", "20"]
    with ServerProcess("faultyapp:app", args=args) as server:
        old_pid = server.state["serving_pid"]
        load = LoadGenerator(server.address, concurrency=4, rate=100).start()
        try:
            _old_window_filled(load, 200)
            record = server.upgrade()
        finally:
            results = load.stop()
        assert server.status()["serving_generation"] == 2
    bake = record["bake"]
    assert (record["outcome"], bake["verdict"]) == ("success", "pass"), bake
    assert bake["decided_ms"] >= 1500 and bake["new"]["requests"] >= 20
    assert list(record["phases_ms"])[-1] == "exit" and record["phases_ms"]["bake"] >= 1500
    assert not pid_alive(old_pid)
    assert error_counts(results) == dict.fromkeys(error_counts([]), 0)


@pytest.mark.parametrize("policy", ["pass", "extend"])
def test_too_little_traffic_follows_the_policy(app_dir: Path, policy: str) -> None:
    args = ["--app-dir", str(app_dir), "--bake-window", "1"]
    env = {**os.environ, "SWAPPROF_BAKE_LOW_TRAFFIC": policy}
    with ServerProcess("faultyapp:app", args=args, env=env) as server:
        load = LoadGenerator(server.address, concurrency=2, rate=200).start()
        try:
            _old_window_filled(load, 150)  # the old window is full; then the traffic stops
        finally:
            load.stop()
        record = server.upgrade()
    bake = record["bake"]
    assert (record["outcome"], bake["verdict"], bake["low_traffic_policy"]) == (
        "success",
        "too_little_traffic",
        policy,
    )
    assert bake["old"]["requests"] >= 50 and bake["new"]["requests"] < 50
    assert bake["extended"] == (3 if policy == "extend" else 0)
    assert bake["decided_ms"] >= 1000 * (1 + bake["extended"])
    assert "50 wanted in each" in bake["detail"]


def test_without_traffic_before_the_switch_there_is_nothing_to_extend(app_dir: Path) -> None:
    args = ["--app-dir", str(app_dir), "--bake-window", "0.3", "--bake-low-traffic", "extend"]
    with ServerProcess("faultyapp:app", args=args) as server:
        record = server.upgrade()
    bake = record["bake"]
    assert (record["outcome"], bake["verdict"], bake["extended"]) == ("success", "too_little_traffic", 0)
    assert "0 new / 0 old requests" in bake["detail"]


def test_an_upgrade_asked_for_during_a_bake_waits_for_its_verdict(
    app_dir: Path, pool: ThreadPoolExecutor
) -> None:
    args = ["--app-dir", str(app_dir), "--bake-window", "2"]
    with ServerProcess("faultyapp:app", args=args) as server:
        first: Future[dict[str, Any]] = pool.submit(server.upgrade)
        wait_for(lambda: _states(server).get((1, 0)) == "parked", 60, "generation 1 parked")
        second = server.upgrade()
        one = first.result(60)
        status = server.status()
    assert (
        one["bake"]["verdict"] == "too_little_traffic" and second["bake"]["verdict"] == "too_little_traffic"
    )
    assert (one["id"], second["id"]) == (1, 2)
    assert second["old_generation"] == 2 and second["new_generation"] == 3
    assert second["phases_ms"]["requested"] > 500, "it waited behind the bake"
    assert status["serving_generation"] == 3


def test_the_old_generation_killed_while_parked_leaves_the_new_one(
    app_dir: Path, pool: ThreadPoolExecutor
) -> None:
    args = ["--app-dir", str(app_dir), "--bake-window", "30", "--workers", "2"]
    with ServerProcess("faultyapp:app", args=args) as server:
        old = server.state["serving_pids"]
        pending: Future[dict[str, Any]] = pool.submit(server.upgrade)
        wait_for(lambda: [_states(server).get((1, w)) for w in (0, 1)] == ["parked"] * 2, 60, "both parked")
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        record = pending.result(60)
        status = server.status()
    bake = record["bake"]
    assert (record["outcome"], bake["verdict"]) == ("success", "old_gone")
    assert bake["decided_ms"] < 30_000 and "nothing to roll back to" in bake["detail"]
    assert status["serving_generation"] == 2
    assert all(g["generation"] == 2 for g in status["generations"])
