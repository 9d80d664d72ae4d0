"""One upgrade = one trace, across master and generations, exported for real over OTLP/HTTP."""

from __future__ import annotations

import os
import socket
import time
from collections import defaultdict
from pathlib import Path

import pytest

from swapprof.cli import main
from swapprof.telemetry import read_spans
from swapprof.testing import ServerProcess
from tests._apps import set_fault, write_faulty_app
from tests._otlp_receiver import OTLPReceiver

SUCCESS_PHASES = {"requested", "spawn", "import", "ready", "switch", "drain", "exit"}
PLAN = ["", "", "import", "", "probe", "", "crash", "", "", ""]  # 7 successes, 3 rollbacks


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


def test_ten_upgrades_make_ten_complete_traces_over_otlp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_dir = write_faulty_app(tmp_path / "app")
    with OTLPReceiver() as receiver:
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME="otlp-test")
        args = ["--app-dir", str(app_dir), "--probe-path", "/healthz", "--drain-grace", "0.2"]
        with ServerProcess("faultyapp:app", args=args, env=env, run_dir=tmp_path / "run") as server:
            records = []
            for fault in PLAN:
                set_fault(app_dir, fault)
                records.append(server.upgrade())
            set_fault(app_dir, "")
        # the master flushed on its way out; every generation flushed before it exited
        spans = list(receiver.spans)
        assert receiver.metric_names >= {"swapprof.upgrades", "swapprof.upgrade.phase.duration"}
    outcomes = [r["outcome"] for r in records]
    assert outcomes.count("rolled_back") == 3 and outcomes.count("success") == 7
    traces: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for span in spans:
        traces[span["trace_id"]].append(span)
    upgrade_traces = {t: s for t, s in traces.items() if any(x["name"] == "swapprof.upgrade" for x in s)}
    assert len(upgrade_traces) == 10, {t: [x["name"] for x in s] for t, s in traces.items()}
    assert set(traces) == set(upgrade_traces)  # no stray trace: every span belongs to an upgrade
    by_id = {}
    for trace_spans in upgrade_traces.values():
        root = next(s for s in trace_spans if s["name"] == "swapprof.upgrade")
        by_id[root["attributes"]["swapprof.upgrade.id"]] = (root, trace_spans)
        names = [s["name"] for s in trace_spans]
        assert len(names) == len(set(names)), f"duplicate phase spans: {names}"
        for span in trace_spans:
            if span is not root:
                assert span["parent_span_id"] == root["span_id"]
            assert span["resource"]["service.name"] == "otlp-test"
            assert span["resource"]["swapprof.role"] in ("master", "generation")
    pids: set[int] = set()
    for record in records:
        root, trace_spans = by_id[record["id"]]
        names = {s["name"] for s in trace_spans} - {"swapprof.upgrade"}
        assert root["attributes"]["swapprof.outcome"] == record["outcome"]
        if record["outcome"] == "success":
            assert names == SUCCESS_PHASES
            roles = {s["name"]: s["resource"]["process.pid"] for s in trace_spans}
            assert roles["requested"] == server.pid
            assert roles["import"] == roles["ready"] == record["new_pid"]
            assert roles["switch"] == roles["drain"] == roles["exit"] == record["old_pid"]
            assert len({roles["requested"], roles["import"], roles["drain"]}) == 3
        else:
            assert {"requested", "spawn", "rollback"} <= names and not names & {"switch", "drain", "exit"}
            assert root["attributes"]["swapprof.reason"] == record["reason"]
            assert root["status_code"] == 2  # STATUS_CODE_ERROR
        pids.update(s["resource"]["process.pid"] for s in trace_spans)
    assert len(pids) >= 3
    # no span lost: the embedded JSON-lines file holds exactly the same spans
    file_spans = read_spans(tmp_path / "run" / "spans.jsonl")
    assert {s["span_id"] for s in file_spans} == {s["span_id"] for s in spans}
    # and `swapprof report` turns them into waterfalls
    html = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "run"), "--html", str(html)]) == 0
    text = capsys.readouterr().out
    assert text.count("upgrade ") >= 10 and "rolled_back (import_error)" in text
    assert html.read_text().count("<svg") == 10


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_collector_delays_nothing_beyond_the_flush_bound(tmp_path: Path) -> None:
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", SWAPPROF_FLUSH_TIMEOUT="1")
    with ServerProcess(env=env, args=["--drain-grace", "0.1"], run_dir=tmp_path / "run") as server:
        records = [server.upgrade() for _ in range(3)]
        t0 = time.monotonic()
    stop_s = time.monotonic() - t0
    assert [r["outcome"] for r in records] == ["success"] * 3
    for record in records:
        # exit = flush (<= 1 s) + exporter shutdown (<= 1 s) + interpreter teardown
        assert record["phases_ms"]["exit"] < 6000, record["phases_ms"]
        assert record["time_to_ready_ms"] < 30000
    assert stop_s < 20
    assert len(read_spans(tmp_path / "run" / "spans.jsonl")) >= 3 * 8  # the embedded file still has them all
