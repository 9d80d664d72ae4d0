"""--workers N: a generation of N processes on the same listeners, upgraded and rolled back as
one, a worker that dies replaced alone. Real processes, real sockets on port 0."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from swapprof._errors import ConfigError
from swapprof._process import children, pid_alive
from swapprof.cli import build_parser
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.server._cli_format import format_status
from swapprof.server._config import ServerConfig
from swapprof.telemetry import read_spans
from swapprof.testing import ServerProcess
from tests._apps import set_fault, write_faulty_app
from tests._helpers import http_get, wait_for

NO_ERRORS = {k: 0 for k in error_counts([])}


def test_workers_setting_flag_env_auto_and_refusals() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert ServerConfig("m:app").workers == 1
    assert ServerConfig.from_env("m:app", {}, workers="auto").workers == cpus
    assert ServerConfig.from_env("m:app", {"SWAPPROF_WORKERS": "3"}).workers == 3
    assert ServerConfig.from_env("m:app", {"SWAPPROF_WORKERS": "auto"}).workers == cpus
    assert ServerConfig.from_env("m:app", {"SWAPPROF_WORKERS": "3"}, workers=2).workers == 2
    for bad in (0, -1, "0", "two", True, 1.5):
        with pytest.raises(ConfigError, match="--workers"):
            ServerConfig.from_env("m:app", workers=bad)
    with pytest.raises(ConfigError, match="--workers"):
        ServerConfig.from_env("m:app", {"SWAPPROF_WORKERS": "many"})
    args = build_parser().parse_args(["serve", "m:app", "--workers", "auto"])
    assert args.workers == cpus
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "m:app", "--workers", "0"])


def _workers(status: dict[str, Any], generation: int | None = None) -> list[dict[str, Any]]:
    number = status["serving_generation"] if generation is None else generation
    return [g for g in status["generations"] if g["generation"] == number]


def _pids_answering(server: ServerProcess, want: int) -> set[int]:
    """Pids the demo app answers `/` from, on new connections, until ``want`` distinct ones."""
    seen: set[int] = set()

    def enough() -> bool:
        status, _, body = http_get(server.url + "/")
        assert status == 200
        seen.add(json.loads(body)["pid"])
        return len(seen) >= want

    wait_for(enough, what=f"{want} distinct pids answering")
    return seen


def test_two_workers_answer_from_two_pids_and_upgrades_under_load_lose_nothing() -> None:
    with ServerProcess(args=["--workers", "2", "--drain-grace", "0.2"]) as server:
        status = server.status()
        first = {g["pid"] for g in _workers(status)}
        assert len(first) == 2 and sorted(g["worker"] for g in _workers(status)) == [0, 1]
        assert _pids_answering(server, 2) == first
        loads = [
            LoadGenerator(
                server.address, concurrency=3, mode="keepalive", paths=[("/", 8), ("/slow?ms=200", 1)]
            ),
            LoadGenerator(server.address, concurrency=2, mode="new", paths=[("/", 4), ("/slow?ms=100", 1)]),
        ]
        for load in loads:
            load.start()
        try:
            records = [server.upgrade() for _ in range(5)]
        finally:
            results = [r for load in loads for r in load.stop()]
        status = server.status()
        last = {g["pid"] for g in _workers(status)}
        answering = _pids_answering(server, 2)
    assert [r["outcome"] for r in records] == ["success"] * 5, [r["detail"] for r in records]
    assert error_counts(results) == NO_ERRORS, error_counts(results)
    assert len(last) == 2 and not last & first and answering == last
    assert [g["generation"] for g in status["generations"]] == [6, 6]
    for record in records:
        assert len(set(record["new_pids"])) == 2 and len(record["old_pids"]) == 2
        assert record["service_gap_ms"] == 0
        assert set(record["worker_phases_ms"]["new"]) == {"0", "1"}
        assert set(record["worker_phases_ms"]["old"]) == {"0", "1"}
        # the generation's phases are its critical path: contiguous, adding up to the figures
        spans = record["spans"]
        assert all(a["end_ns"] == b["start_ns"] for a, b in itertools.pairwise(spans))
        assert record["time_to_ready_ms"] <= record["upgrade_total_ms"]


def test_a_killed_worker_is_replaced_alone_and_only_its_own_connections_break() -> None:
    """SIGKILL loses what that worker held (at most one keep-alive connection per client: no
    server can save those); its replacement and the other worker then serve everyone."""
    with ServerProcess(args=["--workers", "2"]) as server:
        before = {g["worker"]: g["pid"] for g in _workers(server.status())}
        load = LoadGenerator(server.address, concurrency=3, mode="keepalive", paths=[("/", 1)])
        load.start()
        try:
            os.kill(before[1], signal.SIGKILL)

            def replaced() -> dict[str, Any] | None:
                status = server.status()
                now = {g["worker"]: g for g in _workers(status)}
                fresh = now.get(1)
                if fresh and fresh["pid"] != before[1] and fresh["state"] == "serving":
                    return status
                return None

            status = wait_for(replaced, what="worker 1 replaced")
            _pids_answering(server, 2)
        finally:
            results = load.stop()
        after = LoadGenerator(server.address, concurrency=3, mode="keepalive", paths=[("/", 1)])
        after.start()
        try:
            wait_for(lambda: len(after.results) >= 200, what="200 requests after the replacement")
        finally:
            results_after = after.stop()
    now = {g["worker"]: g["pid"] for g in _workers(status)}
    assert status["serving_generation"] == 1 and now[0] == before[0] and now[1] != before[1]
    assert status["worker_restarts"] == 1
    assert status["upgrades_total"] == {}  # no upgrade for it
    assert not pid_alive(before[1])
    counts = error_counts(results)
    assert sum(counts.values()) <= 3 and counts["http_5xx"] == 0, counts  # 3 keep-alive clients
    assert len(results) > 20
    assert error_counts(results_after) == NO_ERRORS, error_counts(results_after)


@pytest.mark.parametrize(
    ("how", "fault", "reason"),
    [
        ("exec each", "import-worker-1", "import_error"),  # --no-fork-workers: each imports the app
        ("forked", "crash-worker-1", "crashed_before_ready"),  # the default: one import, N forks
    ],
)
def test_one_failing_new_worker_rolls_the_whole_upgrade_back(
    tmp_path: Path, how: str, fault: str, reason: str
) -> None:
    app_dir = write_faulty_app(tmp_path / "app")
    args = [
        "--app-dir",
        str(app_dir),
        "--workers",
        "2",
        *(["--no-fork-workers"] if how == "exec each" else []),
    ]
    with ServerProcess("faultyapp:app", args=args) as server:
        old = {g["pid"] for g in _workers(server.status())}
        set_fault(app_dir, fault)
        record = server.upgrade()
        status = server.status()
        new = record["new_pids"]
        answering = _pids_answering(server, 2)
        master_children = wait_for(
            lambda: children(server.pid) if children(server.pid) == old else None,
            what=lambda: f"the master's children {children(server.pid)} back to the old workers {old}",
        )
    assert record["outcome"] == "rolled_back" and record["reason"] == reason, record
    assert record["failed_worker"] == 1
    assert record.get("workers_forked") == (2 if how == "forked" else None)
    if how == "exec each":
        assert "worker 1" in record["detail"]
        assert any("deliberate import failure in worker 1" in line for line in record["tail"])
    else:
        assert "SIGABRT" in record["detail"], record["detail"]  # its real status, though forked
    assert status["serving_generation"] == 1 and {g["pid"] for g in status["generations"]} == old
    assert answering == old
    assert len(new) == 2 and not any(pid_alive(pid) for pid in new)
    assert master_children == old


def test_zygote_mode_upgrades_two_workers() -> None:
    with ServerProcess(args=["--workers", "2", "--preload", "json", "--drain-grace", "0.1"]) as server:
        records = [server.upgrade() for _ in range(3)]
        status = server.status()
        answering = _pids_answering(server, 2)
    assert [r["outcome"] for r in records] == ["success"] * 3, [r["detail"] for r in records]
    assert all(r["spawn_mode"] == "fork" and len(set(r["new_pids"])) == 2 for r in records)
    assert any(r.get("spare") for r in records)  # the waiting spare became one of the workers
    assert answering == {g["pid"] for g in _workers(status)} and len(answering) == 2


def test_fifty_upgrades_of_two_workers_leave_no_process_or_fd() -> None:
    with ServerProcess(args=["--workers", "2", "--drain-grace", "0.05"]) as server:
        server.upgrade()
        fds = server.status()["master_fds"]
        for _ in range(49):
            assert server.upgrade()["outcome"] == "success"

        def settled() -> bool:  # the upgrade's app zygote, let go after the last fork, reaped too
            return children(server.pid) == {g["pid"] for g in server.status()["generations"]}

        wait_for(settled, what=lambda: f"only the workers under the master: {children(server.pid)}")
        status = server.status()
        kids = children(server.pid)
    assert status["master_fds"] == fds
    assert status["serving_generation"] == 51
    assert kids == {g["pid"] for g in status["generations"]} and len(kids) == 2


def test_status_lists_every_worker_with_its_memory_and_the_spans_carry_the_worker() -> None:
    with ServerProcess(args=["--workers", "2"]) as server:
        record = server.upgrade()
        status = server.status()
        text = format_status(status)
        spans_file = server.run_dir / "spans.jsonl"

        def all_spans() -> list[Any] | None:
            spans = read_spans(spans_file)
            root = [
                s
                for s in spans
                if s["name"] == "swapprof.upgrade"
                and s["attributes"].get("swapprof.upgrade.id") == record["id"]
            ]
            if not root:
                return None
            mine = [s for s in spans if s["trace_id"] == root[0]["trace_id"]]
            with_worker = [s for s in mine if s["attributes"].get("swapprof.worker") is not None]
            return mine if len(with_worker) >= 10 else None

        spans = wait_for(all_spans, what="the upgrade's 10 worker spans")
    workers = _workers(status)
    assert status["workers"] == 2 and len(workers) == 2
    for gen in workers:
        assert gen["state"] == "serving" and gen["pid"] > 0 and gen["rss_kb"] > 1000
        assert gen["fds"] > 3 and "pss_kb" in gen
    assert all(f" {g['pid']} " in text for g in workers)
    by_phase: dict[str, set[int]] = {}
    for span in spans:
        worker = span["attributes"].get("swapprof.worker")
        if worker is not None:
            by_phase.setdefault(span["name"].rsplit(".", 1)[-1], set()).add(worker)
    assert {p: w for p, w in by_phase.items() if p in ("import", "ready", "switch", "drain", "exit")} == {
        p: {0, 1} for p in ("import", "ready", "switch", "drain", "exit")
    }


def test_replacements_that_keep_dying_back_off_and_a_stable_one_resets() -> None:
    import asyncio
    from types import SimpleNamespace

    from swapprof.server.master._restarts import WorkerRestarts

    said: list[str] = []
    restarts = WorkerRestarts(
        asyncio.new_event_loop(),
        spawn=None,  # type: ignore[arg-type]
        serving=lambda: None,
        busy=lambda: False,
        stopping=lambda: True,  # nothing is scheduled: only the delays are looked at
        counted=lambda: None,
        recover=lambda: None,
        idle=lambda: True,
        ready_timeout=30.0,
        say=said.append,
        run_task=None,  # type: ignore[arg-type]
    )

    def death(lived_s: float, ready: bool = True) -> float:
        gen = SimpleNamespace(
            worker=1, number=4, pid=99, spawned_at=1, exited_at=1 + int(lived_s * 1e9),
            stages={"ready": 2} if ready else {}, describe_exit=lambda: "killed by SIGKILL",
        )  # fmt: skip
        restarts.died(None, gen)  # type: ignore[arg-type]
        return restarts.delay(1)

    assert death(100.0) == 0.0  # a worker that served a while: replaced at once
    assert [death(0.5) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert death(3.0, ready=False) == 30.0
    assert death(12.0) == 0.0  # lived 10 s: the back-off starts over
    assert restarts.delay(0) == 0.0  # per slot
    restarts.loop.close()
