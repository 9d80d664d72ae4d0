"""``swapprof observe -- uvicorn ... --workers 2`` with the ASGI wrapper: real HUP upgrades under load.

Each HUP must come out as one upgrade record and one trace whose spans belong to the observer
and to the old and new worker processes (their own resource), stitched from the workers'
events and the process tree.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from swapprof._process import children, pid_alive
from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.integrations import _events as ev
from swapprof.integrations._adapters import Adapter
from swapprof.integrations._observe import Observer
from swapprof.integrations._stitch import Stitcher
from swapprof.integrations._timeline import Timeline
from swapprof.telemetry import read_spans
from tests import _integrations as it
from tests._helpers import wait_for

UVICORN = it.BIN / "uvicorn"


def pids_of(spans: list[dict[str, Any]]) -> set[int]:
    return {s["resource"]["process.pid"] for s in spans}


def observe(tmp: Path) -> it.Server:
    (tmp / "asgiapp.py").write_text(it.ASGI_APP)
    argv = [sys.executable, "-m", "swapprof", "observe", "--", str(UVICORN), "swapprof.integrations.asgi:app"]
    argv += ["--workers", "2", "--port", "{port}", "--no-access-log", "--timeout-graceful-shutdown", "5"]
    return it.Server(argv, tmp, env={"SWAPPROF_APP": "asgiapp:app"})


@pytest.mark.skipif(not UVICORN.exists(), reason="needs uvicorn")
def test_uvicorn_workers_hup_under_observe_is_one_trace_per_upgrade(tmp_path: Path) -> None:
    with observe(tmp_path) as server:
        main = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        wait_for(lambda: it.n_spawned(main, 2), 60, "two workers")
        load = LoadGenerator(f"127.0.0.1:{server.port}", concurrency=4, rate=200).start()
        try:
            for n in (1, 2):
                wait_for(lambda n=n: len(load.results) > 20 * n, 60, "load")  # type: ignore[misc]
                assert server.proc is not None
                server.proc.send_signal(signal.SIGHUP)  # to the observer, which forwards it
                records = server.wait_records(n)
        finally:
            results = load.stop()
        for n, record in enumerate(records, 1):
            assert record["outcome"] == "success" and record["server"] == "uvicorn", record
            assert (record["old_generation"], record["new_generation"]) == (n, n + 1)
            assert len(record["old_pids"]) == 2 and len(record["new_pids"]) == 2
            assert record["service_gap_ms"] == 0  # uvicorn replaces one worker at a time
            assert record["old_pid"] == main
        assert not set(records[0]["new_pids"]) & set(records[0]["old_pids"])
        assert records[1]["old_pids"] == records[0]["new_pids"]

        def traces() -> dict[str, list[dict[str, Any]]] | None:
            found: dict[str, list[dict[str, Any]]] = {}
            for span in read_spans(server.run_dir / "spans.jsonl"):
                found.setdefault(str(span["trace_id"]), []).append(span)
            roots = [t for t in found.values() if any(s["name"] == "swapprof.upgrade" for s in t)]
            return found if len(roots) == 2 else None

        by_trace = wait_for(traces, 30, "two traces")
        for record in records:
            [spans] = [
                t for t in by_trace.values()
                if any(s["attributes"].get("swapprof.upgrade.id") == record["id"] for s in t)
            ]  # fmt: skip
            assert set(record["old_pids"]) | set(record["new_pids"]) | {
                int(server.state()["observer_pid"])
            } <= pids_of(spans)
            names = {s["name"] for s in spans}
            assert {"requested", "spawn", "import", "ready", "switch", "drain", "exit"} <= names
        text = server.metrics()
        assert it.metric(text, "swapprof_upgrades_total", outcome="success", reason="ok") == 2
        assert it.metric(text, "swapprof_generation") == 3
        assert error_counts(results)["refused"] == 0
        assert server.stop() == 0


def test_observe_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "swapprof", "observe", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no command" in done.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "swapprof",
            "observe",
            "--run-dir",
            str(tmp_path),
            "--",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "cannot run" in done.stderr


def test_the_gap_is_the_time_no_worker_accepted() -> None:
    ms = 1_000_000
    finished: list[tuple[Timeline, int, str]] = []
    stitcher = Stitcher("test", lambda t, ended, outcome, reason: finished.append((t, ended, outcome)))
    stitcher.started(10, 1, 0, 0)
    pending = stitcher.begin(100 * ms)
    pending.expected_new = 1
    stitcher.stamp(10, ev.TERM, 200 * ms)  # the old worker stops accepting at 200 ms
    stitcher.started(20, 2, 0, 150 * ms)
    stitcher.stamp(20, ev.IMPORTED, 300 * ms)
    stitcher.stamp(20, ev.SERVED, 450 * ms)  # the new one serves at 450 ms
    assert stitcher.check(500 * ms) is None and not finished  # the old one is still there
    stitcher.gone(10, 600 * ms)
    stitcher.check(700 * ms)
    [(timeline, ended, outcome)] = finished
    record = timeline.record(ended, outcome).to_dict()
    assert outcome == "success" and ended == 600 * ms
    assert record["service_gap_ms"] == 250 and record["service_gap_source"] == "served"
    assert record["phases_ms"]["gap"] == 250
    assert record["time_to_ready_ms"] == 350


def test_events_round_trip_and_never_raise(tmp_path: Path) -> None:
    receiver = ev.Receiver(tmp_path / "e.sock")
    try:
        sender = ev.Sender(receiver.path)
        assert sender.send(ev.event(ev.SERVED, 5, index=1))
        [message] = wait_for(receiver.drain, 60, "the event")
        assert message["event"] == "served" and message["ns"] == 5 and message["index"] == 1
        sender.close()
    finally:
        receiver.close()
    nobody = ev.Sender(str(tmp_path / "gone.sock"))
    assert not nobody.send({"event": "x"}) and nobody.dropped == 1  # dropped, counted
    nobody.close()
    file_sender = ev.Sender(None, tmp_path / "events.jsonl")
    assert file_sender.send(ev.event(ev.STARTED))
    assert '"event":"started"' in (tmp_path / "events.jsonl").read_text()


def gone(pid: int) -> bool:
    """``pid`` has exited and is reaped (an orphan comes to the test process, a subreaper)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not pid_alive(pid)


def test_an_upgrade_signal_before_the_first_look_at_the_tree_keeps_the_serving_workers_old(
    tmp_path: Path,
) -> None:
    argv = ["/bin/sh", "-c", "trap '' HUP; sleep 60 & wait"]  # a "server" with one worker
    observer = Observer(argv, Adapter(), tmp_path)
    child = observer.child = subprocess.Popen(argv)
    selector = selectors.DefaultSelector()
    workers: list[int] = []
    try:
        workers = wait_for(lambda: children(child.pid) or None, 60, "the worker")
        observer._signals.append((signal.SIGHUP, time.monotonic_ns()))  # arrived before any scan
        observer._forward(selector)
        pending = observer.stitcher.pending
        assert pending is not None and set(pending.old) == set(workers) and not pending.new
        assert pending.expected_new == 1
    finally:
        for fd in observer.pidfds.values():
            os.close(fd)
        selector.close()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.kill()
        child.wait()
        for pid in workers:
            wait_for(lambda pid=pid: gone(pid), 30, "the worker reaped")  # type: ignore[misc]
