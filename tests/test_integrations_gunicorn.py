"""gunicorn under ``-c python:swapprof.integrations.gunicorn``: real HUP and USR2 upgrades under load.

Each upgrade must come out as one upgrade record (``RUN_DIR/upgrades.jsonl``, the reference
server's format) and one complete trace in ``RUN_DIR/spans.jsonl``, with spans of the master and
of the old and new workers' processes; the master's loopback /metrics has the upgrade metrics
(and a real Prometheus scrapes them); HUP's service gap (old workers stopped before new ones
served) is measured; a user's own hooks still run.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from swapprof.gate._load import LoadGenerator, error_counts
from swapprof.telemetry import read_spans
from tests import _integrations as it
from tests._helpers import http_get, wait_for
from tests._prometheus import Prometheus

GUNICORN = it.BIN / "gunicorn"
pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="needs gunicorn: pip install -e '.[bench]'")
CONFIG = "python:swapprof.integrations.gunicorn"


def gunicorn(tmp: Path, *extra: str, config: str = CONFIG) -> it.Server:
    (tmp / "wsgiapp.py").write_text(it.WSGI_APP)
    argv = [str(GUNICORN), "-c", config, "-w", "2", "-b", "127.0.0.1:{port}", "--no-control-socket"]
    return it.Server([*argv, "--graceful-timeout", "5", *extra, "wsgiapp:app"], tmp)


def traces(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for span in read_spans(run_dir / "spans.jsonl"):
        found.setdefault(span["trace_id"], []).append(span)
    return {t: spans for t, spans in found.items() if any(s["name"] == "swapprof.upgrade" for s in spans)}


def check_trace(server: it.Server, record: dict[str, Any], master: int) -> list[dict[str, Any]]:
    found = wait_for(lambda: traces(server.run_dir) or None, 30, "the upgrade's trace")
    assert len(found) == 1, found.keys()
    spans = next(iter(found.values()))
    names = sorted(s["name"] for s in spans)
    for phase in ("requested", "spawn", "import", "ready", "switch", "drain", "exit"):
        assert phase in names, names
    pids = {s["resource"]["process.pid"] for s in spans}
    assert master in pids
    assert set(record["new_pids"]) <= pids and set(record["old_pids"]) <= pids
    workers = [s for s in spans if s["resource"].get("swapprof.role") == "generation"]
    assert {s["attributes"]["swapprof.worker"] for s in workers if s["name"] == "import"} == {0, 1}
    return spans


def _both_workers_answer(server: it.Server) -> set[int]:
    """The pids of gunicorn's 2 workers once each has answered a request on a new connection
    (it ran its post_worker_init hook, so the integration knows it), read on new connections."""
    seen: set[int] = set()

    def both() -> bool:
        status, _, body = http_get(f"http://127.0.0.1:{server.port}/")
        if status == 200:
            seen.add(int(json.loads(body)["pid"]))
        return len(seen) >= 2

    wait_for(both, 60, lambda: f"both workers answering (saw {sorted(seen)})")
    return seen


def test_hup_under_load_is_one_trace_one_record_and_the_gap_is_measured(tmp_path: Path) -> None:
    with gunicorn(tmp_path) as server:
        master = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        load = LoadGenerator(f"127.0.0.1:{server.port}", concurrency=4, rate=200).start()
        try:
            wait_for(lambda: len(load.results) > 20, 60, "load")
            old = _both_workers_answer(server)  # a worker still booting is no old worker yet
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            [record] = server.wait_records(1)
            wait_for(
                lambda: len(load.results) > 50 + len(load.results) // 2, 60, "requests after the upgrade"
            )
        finally:
            results = load.stop()
        assert record["outcome"] == "success" and record["server"] == "gunicorn"
        assert record["old_generation"] == 1 and record["new_generation"] == 2
        assert set(record["old_pids"]) == old and len(record["new_pids"]) == 2
        assert record["service_gap_ms"] > 0, record  # gunicorn stops the old workers first
        assert record["phases_ms"]["gap"] == record["service_gap_ms"]
        assert record["service_gap_source"] == "served"  # under load, a real first request
        assert 0 < record["time_to_ready_ms"] <= record["upgrade_total_ms"]
        check_trace(server, record, master)
        text = server.metrics()
        assert it.metric(text, "swapprof_upgrades_total", outcome="success", reason="ok") == 1
        assert it.metric(text, "swapprof_upgrade_service_gap_seconds_count", server="gunicorn") == 1
        assert it.metric(text, "swapprof_upgrade_phase_duration_seconds_count", phase="gap") == 1
        assert it.metric(text, "swapprof_generation") == 2
        assert sum(error_counts(results).values()) <= len(results) // 10, error_counts(results)
        assert server.stop() == 0
    assert not (server.run_dir / "state.json").exists()


def test_usr2_new_master_records_the_upgrade_joined_through_env_orig(tmp_path: Path) -> None:
    with gunicorn(tmp_path, "--pid", "{tmp}/g.pid") as server:
        old_master = wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        old_workers = wait_for(lambda: it.n_children(old_master, 2), 60, "two workers")
        load = LoadGenerator(f"127.0.0.1:{server.port}", concurrency=4, rate=200).start()
        try:
            wait_for(lambda: len(load.results) > 20, 60, "load")
            assert server.proc is not None
            server.proc.send_signal(signal.SIGUSR2)
            pid2 = tmp_path / "g.pid.2"
            new_master = wait_for(lambda: pid2.exists() and int(pid2.read_text() or 0), 60, "the new master")
            new_workers = wait_for(lambda: it.n_children(new_master, 2), 60, "its workers")

            def served_by_new() -> bool:
                body = it.get(server.url)
                return body is not None and json.loads(body)["pid"] in new_workers

            wait_for(served_by_new, 60, "an answer from a new worker")
            server.proc.send_signal(signal.SIGTERM)  # the old master leaves gracefully
            [record] = server.wait_records(1)
        finally:
            results = load.stop()
        assert record["outcome"] == "success" and record["spawn_mode"] == "exec"
        assert record["old_pid"] == old_master and record["new_pid"] == new_master
        assert set(record["old_pids"]) == old_workers and set(record["new_pids"]) == new_workers
        assert record["service_gap_ms"] == 0  # the new workers served before the old ones stopped
        spans = check_trace(server, record, new_master)
        assert {s["resource"]["process.pid"] for s in spans if s["name"] == "drain"} == old_workers
        assert wait_for(lambda: server.state().get("master_pid") == new_master, 60, "the new master's state")
        assert error_counts(results)["refused"] == 0
        server.proc.wait(30)
        server.stop()  # the new master (same process group)


def test_a_users_own_hooks_still_run(tmp_path: Path) -> None:
    (tmp_path / "gunicorn_conf.py").write_text(
        "from pathlib import Path\n"
        "def post_fork(server, worker):\n"
        "    with open('post_fork.log', 'a') as fh: fh.write(f'{worker.pid}\\n')\n"
        "def on_reload(server):\n"
        "    Path('on_reload.log').write_text('reloaded')\n"
        "from swapprof.integrations import gunicorn as swapprof_gunicorn\n"
        "swapprof_gunicorn.install(globals())\n"
    )
    with gunicorn(tmp_path, config=str(tmp_path / "gunicorn_conf.py")) as server:
        wait_for(lambda: server.state().get("master_pid"), 60, "state.json")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        [record] = server.wait_records(1, timeout=60)
        assert record["outcome"] == "success"
        assert (tmp_path / "on_reload.log").read_text() == "reloaded"
        forked = (tmp_path / "post_fork.log").read_text().split()
        assert set(map(int, forked)) >= set(record["new_pids"]) | set(record["old_pids"])


def test_prometheus_scrapes_the_masters_metrics(tmp_path: Path) -> None:
    with gunicorn(tmp_path) as server:
        address = wait_for(lambda: server.state().get("debug_address"), 60, "the debug address")
        with Prometheus({"gunicorn": [address]}) as prometheus:
            prometheus.wait_value('swapprof_generation{job="gunicorn"}', lambda v: v == 1)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            server.wait_records(1)
            prometheus.wait_value('swapprof_upgrades_total{outcome="success",reason="ok"}', lambda v: v == 1)
            prometheus.wait_value("swapprof_upgrade_service_gap_seconds_count", lambda v: v == 1)
            prometheus.wait_value('swapprof_generation{job="gunicorn"}', lambda v: v == 2)


def test_chained_hooks_keep_gunicorns_arity() -> None:
    from gunicorn import util

    from swapprof.integrations import gunicorn as module

    arity = {"post_worker_init": 1, "pre_fork": 2, "post_fork": 2, "worker_exit": 2, "child_exit": 2}
    arity["nworkers_changed"] = 3
    for name in module.HOOKS:
        assert util.get_arity(getattr(module, name)) == arity.get(name, 1), name
        ns: dict[str, Any] = {}
        module.install(ns)
        assert util.get_arity(ns[name]) == arity.get(name, 1)
