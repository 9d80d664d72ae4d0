"""``swapprof observe -- granian --workers 2`` with the ASGI wrapper: real HUP upgrades under load.

granian's HUP respawns its workers one at a time: a new one, then a fixed ``--respawn-interval``
sleep, then the old one SIGTERMed, with no readiness check. Each HUP must come out as one
upgrade record and one trace with spans of the observer and of the old and new workers; a real
Prometheus scrapes the observer's /metrics; and when the app imports slower than two respawn
intervals, the time no worker accepted is measured as the ``gap`` phase (and, since each worker
binds its own listener, the client sees refused connections then).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.telemetry import read_spans
from tests import _integrations as it
from tests._helpers import wait_for
from tests._prometheus import Prometheus

GRANIAN = it.BIN / "granian"
pytestmark = pytest.mark.skipif(not GRANIAN.exists(), reason="needs granian: pip install -e '.[dev]'")
PHASES = ("requested", "spawn", "import", "ready", "switch", "drain", "exit")
SLOW_IMPORT_S = 1.5
"""The slow app's import: more than two respawn intervals (0.1 s each) plus a drain."""


def granian(tmp: Path, respawn_interval: float, slow_import: float = 0.0) -> it.Server:
    app = it.ASGI_APP
    if slow_import:
        app = f"import time\ntime.sleep({slow_import})  # an app that takes this long to import\n" + app
    (tmp / "asgiapp.py").write_text(app)
    argv = [sys.executable, "-m", "swapprof", "observe", "--", str(GRANIAN), "--interface", "asgi"]
    argv += ["--workers", "2", "--port", "{port}", "--respawn-interval", str(respawn_interval)]
    argv += ["--workers-kill-timeout", "5", "swapprof.integrations.asgi:app"]
    return it.Server(argv, tmp, env={"SWAPPROF_APP": "asgiapp:app"})


def upgrade_traces(run_dir: Path, n: int) -> dict[int, list[dict[str, Any]]] | None:
    """upgrade id -> the spans of its trace, once there are ``n`` traces with a root."""
    found: dict[str, list[dict[str, Any]]] = {}
    for span in read_spans(run_dir / "spans.jsonl"):
        found.setdefault(str(span["trace_id"]), []).append(span)
    by_id = {}
    for spans in found.values():
        ids = {s["attributes"].get("swapprof.upgrade.id") for s in spans if s["name"] == "swapprof.upgrade"}
        if len(ids) == 1:
            by_id[int(ids.pop())] = spans
    return by_id if len(by_id) >= n else None


def hup(server: it.Server) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)  # to the observer, which forwards it


def test_granian_hup_under_observe_is_one_trace_per_upgrade_and_prometheus_scrapes_it(
    tmp_path: Path,
) -> None:
    with granian(tmp_path, respawn_interval=0.3) as server:
        main = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        first = wait_for(lambda: it.n_children(main, 2), 60, "two workers")
        address = wait_for(lambda: server.state().get("debug_address"), 60, "the debug address")
        with Prometheus({"granian": [address]}) as prometheus:
            prometheus.wait_value('swapprof_generation{job="granian"}', lambda v: v == 1)
            load = LoadGenerator(f"127.0.0.1:{server.port}", concurrency=4, rate=200).start()
            try:
                for n in (1, 2):
                    wait_for(lambda n=n: len(load.results) > 20 * n, 60, "load")  # type: ignore[misc]
                    hup(server)
                    records = server.wait_records(n)
            finally:
                results = load.stop()
            prometheus.wait_value('swapprof_upgrades_total{outcome="success",reason="ok"}', lambda v: v == 2)
            prometheus.wait_value("swapprof_upgrade_service_gap_seconds_count", lambda v: v == 2)
            prometheus.wait_value('swapprof_generation{job="granian"}', lambda v: v == 3)
        assert set(records[0]["old_pids"]) == first
        assert records[1]["old_pids"] == records[0]["new_pids"]
        for n, record in enumerate(records, 1):
            assert record["outcome"] == "success" and record["server"] == "granian", record
            assert (record["old_generation"], record["new_generation"]) == (n, n + 1)
            assert len(record["old_pids"]) == 2 and len(record["new_pids"]) == 2
            assert not set(record["old_pids"]) & set(record["new_pids"])
            assert record["old_pid"] == main == record["new_pid"]
            assert record["service_gap_ms"] == 0, record  # the other old worker served meanwhile
            assert set(record["ready_sources"].values()) == {"lifespan_ready"}
            assert record["phases_ms"]["spawn"] >= 300, record  # granian sleeps between respawns
        by_id = wait_for(lambda: upgrade_traces(server.run_dir, 2), 30, "two traces")
        observer = int(server.state()["observer_pid"])
        for record in records:
            spans = by_id[record["id"]]
            assert {s["name"] for s in spans} >= set(PHASES)
            pids = {s["resource"]["process.pid"] for s in spans}
            assert set(record["old_pids"]) | set(record["new_pids"]) | {observer} <= pids
            workers = [s for s in spans if s["resource"].get("swapprof.role") == "generation"]
            assert {s["attributes"]["swapprof.worker"] for s in workers if s["name"] == "import"} == {0, 1}
        assert error_counts(results)["refused"] == 0
        assert server.stop() == 0


def test_granian_stops_old_workers_before_a_slow_new_one_is_ready_and_the_gap_is_measured(
    tmp_path: Path,
) -> None:
    with granian(tmp_path, respawn_interval=0.1, slow_import=SLOW_IMPORT_S) as server:
        main = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        wait_for(lambda: it.n_children(main, 2), 60, "two workers")
        load = LoadGenerator(f"127.0.0.1:{server.port}", concurrency=2, rate=50).start()
        try:
            wait_for(lambda: len(load.results) > 10, 60, "load")
            hup(server)
            [record] = server.wait_records(1)
            done = len(load.results)
            wait_for(lambda: len(load.results) > done + 10, 60, "requests after the upgrade")
        finally:
            results = load.stop()
        assert record["outcome"] == "success", record
        # both old workers were SIGTERMed ~0.2 s in; the first new one was ready ~1.5 s in
        assert record["service_gap_ms"] > 500, record
        assert record["phases_ms"]["gap"] == record["service_gap_ms"]
        assert record["service_gap_source"] == "lifespan_ready"
        assert record["time_to_ready_ms"] >= SLOW_IMPORT_S * 1000
        spans = wait_for(lambda: upgrade_traces(server.run_dir, 1), 30, "the trace")[record["id"]]
        assert "gap" in {s["name"] for s in spans}
        # each granian worker binds a listener of its own (SO_REUSEPORT), the main process none:
        # in the gap nothing listens, so new connections are refused, not queued as in gunicorn
        assert error_counts(results)["refused"] > 0
        assert server.stop() == 0
