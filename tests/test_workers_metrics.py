"""--workers N at the master's debug port: every worker's runtime metrics with a ``worker`` label,
counters that never go backwards across a killed worker and an upgrade, a graceful exit that
loses no increment, a wedged worker that does not stall /metrics. Real processes and sockets."""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from pathlib import Path

from swapprof.testing import ServerProcess
from tests._helpers import http_get, serving_pids, wait_for

# The demo app, plus a prometheus_client counter of its own: one increment per GET /hit.
COUNTING_APP = """
from prometheus_client import Counter

from swapprof.server.demo import app as demo_app

HITS = Counter("countingapp_hits", "GET /hit answered by this process")


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/hit":
        HITS.inc()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await demo_app(scope, receive, send)
"""
SERIES_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def scrape(debug: str) -> dict[str, float]:
    """The master's /metrics as {series: value}, checked to be one valid exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = http_get(f"http://{debug}/metrics")
    assert status == 200
    names = [f.name for f in text_string_to_metric_families(body.decode())]
    assert len(names) == len(set(names)), "a family appears twice"
    series = {}
    for line in body.decode().splitlines():
        found = SERIES_RE.match(line)
        if found and not line.startswith("#"):
            series[found[1] + (found[2] or "")] = float(found[3])
    return series


def worker_series(series: dict[str, float], name: str) -> dict[str, float]:
    return {k: v for k, v in series.items() if k.startswith(name + "{") and 'worker="' in k}


def per_worker(series: dict[str, float], name: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for key, value in worker_series(series, name).items():
        worker = re.search(r'worker="(\d+)"', key)
        assert worker
        totals[worker[1]] = totals.get(worker[1], 0.0) + value
    return totals


class Monotonic:
    """Scrapes the master and fails when a counter series of a worker ever went down."""

    COUNTERS = ("cpython_gc_collections_total", "process_cpu_seconds_total", "countingapp_hits_total")

    def __init__(self, debug: str) -> None:
        self.debug = debug
        self.last: dict[str, float] = {}
        self.scrapes = 0

    def check(self) -> dict[str, float]:
        series = scrape(self.debug)
        self.scrapes += 1
        for name in self.COUNTERS:
            for key, value in worker_series(series, name).items():
                assert value >= self.last.get(key, 0.0), f"{key} went from {self.last[key]} to {value}"
                self.last[key] = value
        return series


def _app_dir(tmp_path: Path) -> Path:
    (tmp_path / "countingapp.py").write_text(COUNTING_APP)
    return tmp_path


def test_every_worker_at_the_master_and_counters_never_go_back(tmp_path: Path) -> None:
    args = ["--workers", "2", "--app-dir", str(_app_dir(tmp_path)), "--drain-grace", "0.1"]
    with ServerProcess("countingapp:app", args=args) as server:
        debug = server.status()["debug_address"]
        watch = Monotonic(debug)

        def both_workers() -> bool:
            found = per_worker(watch.check(), "cpython_gc_collections_total")
            return set(found) == {"0", "1"}

        wait_for(both_workers, what='cpython_gc_collections_total of worker="0" and worker="1"')
        series = watch.check()
        assert set(per_worker(series, "process_resident_memory_bytes")) == {"0", "1"}
        assert "process_resident_memory_bytes" in series  # the master's own, without a label
        private = server.run_dir / "private"
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        sockets = sorted(p.name for p in private.iterdir())
        assert sockets == ["gen-1.0.sock", "gen-1.1.sock"]
        assert all(stat.S_IMODE((private / n).stat().st_mode) == 0o600 for n in sockets)

        # (a) a SIGKILLed worker is replaced: its counts so far stay in worker="1"'s series
        before = per_worker(watch.check(), "cpython_gc_collections_total")
        old_pid = serving_pids(server)[1]
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: serving_pids(server).get(1, old_pid) != old_pid, what="worker 1 replaced")
        wait_for(
            lambda: per_worker(watch.check(), "cpython_gc_collections_total")["1"] > before["1"],
            what="the replacement's collections added to worker 1's",
        )

        # (b) an upgrade: hits served since the last read reach the master by the final read;
        # a socket nobody serves (a SIGKILLed worker's of an earlier generation) is swept away
        (private / "gen-99.0.sock").write_text("")
        hits = 40
        for _ in range(hits):
            assert http_get(server.url + "/hit")[0] == 200
        record = server.upgrade()
        assert record["outcome"] == "success"

        def all_hits() -> bool:
            total = sum(per_worker(watch.check(), "countingapp_hits_total").values())
            assert total <= hits
            return total == hits

        wait_for(all_hits, timeout=10, what=f"all {hits} hits counted after the old workers exited")
        assert wait_for(
            lambda: sorted(p.name for p in private.iterdir()) == ["gen-2.0.sock", "gen-2.1.sock"],
            what="the old workers' sockets removed, the stale one swept",
        )
        wait_for(  # a gauge: the live worker's value only
            lambda: per_worker(watch.check(), "swapprof_generation") == {"0": 2, "1": 2},
            what='swapprof_generation 2 for worker="0" and worker="1"',
        )
        assert watch.scrapes > 5


def test_a_wedged_worker_does_not_stall_the_masters_metrics(tmp_path: Path) -> None:
    with ServerProcess(args=["--workers", "2"]) as server:
        debug = server.status()["debug_address"]
        wait_for(
            lambda: set(per_worker(scrape(debug), "process_cpu_seconds_total")) == {"0", "1"},
            what="both workers read",
        )
        stopped = serving_pids(server)[1]
        os.kill(stopped, signal.SIGSTOP)
        try:
            started = time.monotonic()
            series = scrape(debug)
            took = time.monotonic() - started
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert took < 5, took
        assert set(per_worker(series, "process_cpu_seconds_total")) == {"0", "1"}  # its last read
        errors = per_worker(series, "swapprof_worker_scrape_errors_total")
        assert errors == {"0": 0, "1": 1}, errors
