"""gunicorn as a bench target: the recipe (examples/gunicorn: USR2 + WINCH + QUIT) measured from
the client side, and gunicorn under swapprof's config module, whose records add its phases."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

from swapprof.gate._cli import bench
from swapprof.gate._compare import compare
from swapprof.gate._report_md import render_markdown
from swapprof.gate._verdict import GateOptions
from tests._integrations import ROOT, WSGI_APP
from tests.test_gate_cli import parse

GUNICORN = Path(sys.executable).with_name("gunicorn")
RECIPE = Path(__file__).resolve().parents[1] / "examples" / "gunicorn" / "usr2_upgrade.py"


@pytest.mark.skipif(not GUNICORN.exists(), reason="needs gunicorn: pip install -e '.[bench]'")
def test_gunicorn_usr2_upgrades_are_measured(tmp_path: Path) -> None:
    server = (
        f"{GUNICORN} -k uvicorn.workers.UvicornWorker -w 1 --graceful-timeout 2 -b 127.0.0.1:{{port}} "
        "--pid {tmpdir}/g.pid swapprof.server.demo:app"
    )
    upgrade = f"{{python}} {RECIPE} {{pid}} {{tmpdir}}/g.pid --port {{port}} --probe-field pid"
    argv = ["bench", "--cmd", server, "--pid-file", "{tmpdir}/g.pid", "--upgrade-cmd", upgrade]
    argv += [
        "--probe-field",
        "pid",
        "--upgrades",
        "2",
        "--interval",
        "0.2",
        "--warmup",
        "0.3",
        "--no-yardstick",
    ]
    doc = bench(parse([*argv, "--quiet", "--output", str(tmp_path / "gunicorn.json")]))
    assert [u["outcome"] for u in doc["upgrades"]] == ["success", "success"], doc["upgrades"]
    for upgrade_entry in doc["upgrades"]:
        assert upgrade_entry["source"] == "client"
        assert 0 < upgrade_entry["time_to_ready_ms"] <= upgrade_entry["upgrade_total_ms"]
        assert list(upgrade_entry["phases_ms"]) == ["ready", "exit"]
    masters = [g["pids"][0] for g in doc["generations"]]
    assert len(set(masters)) == 3, doc["generations"]  # USR2 replaces the master every time
    assert all(len(g["pids"]) >= 2 and g["fds"] for g in doc["generations"])  # master + worker
    assert doc["requests"]["total"] > 0


@pytest.mark.skipif(not GUNICORN.exists(), reason="needs gunicorn: pip install -e '.[bench]'")
def test_gunicorn_under_the_integration_is_judged_by_its_phases(tmp_path: Path) -> None:
    (tmp_path / "wsgiapp.py").write_text(WSGI_APP)
    server = (
        f"{GUNICORN} -c python:swapprof.integrations.gunicorn -w 1 --graceful-timeout 2 --no-control-socket "
        f"--pythonpath {tmp_path} -b 127.0.0.1:{{port}} wsgiapp:app"
    )
    argv = ["bench", "--cmd", server, "--upgrade-cmd", "kill -HUP {pid}", "--probe-field", "pid"]
    argv += ["--upgrades", "3", "--interval", "0.2", "--warmup", "0.3", "--no-yardstick", "--quiet"]
    argv += ["--env", f"PYTHONPATH={ROOT}", "--output", str(tmp_path / "base.json")]
    doc = bench(parse(argv))
    assert [u["outcome"] for u in doc["upgrades"]] == ["success"] * 3, doc["upgrades"]
    for entry in doc["upgrades"]:
        assert entry["source"] == "client+server" and entry["server"] == "gunicorn", entry
        assert {"requested", "spawn", "import", "ready", "switch", "gap", "drain", "exit"} <= set(
            entry["phases_ms"]
        ), entry
        assert entry["service_gap_ms"] == entry["phases_ms"]["gap"] > 0  # gunicorn stops the old one first
        assert {name for name, _, _ in entry["spans_ms"]} >= {"gap", "import"}
        assert 0 < entry["time_to_ready_ms"] <= entry["upgrade_total_ms"]  # the client's, as before
        assert entry["server_time_to_ready_ms"] > 0
    assert len(doc["samples"]["service_gap_ms"]) == 3

    # the same run against itself: the gap is judged without being asked for, and passes
    verdict = compare(doc, doc)
    assert verdict.options.metrics == ("time_to_ready", "upgrade_p99", "service_gap")
    assert verdict.passed, [c.message for c in verdict.failed]
    assert "| `gap` | " in render_markdown(verdict)  # the phase table
    # a build whose every gap is 3x the longest of the baseline fails on it, by the gap and the gap phase
    slower, worst = copy.deepcopy(doc), 3 * max(doc["samples"]["service_gap_ms"])
    for entry in slower["upgrades"]:
        entry["phases_ms"]["gap"] = entry["service_gap_ms"] = worst
    slower["samples"]["service_gap_ms"] = [worst] * 3
    assert [c.name for c in compare(doc, slower).failed] == ["service_gap"]
    judged = compare(doc, slower, GateOptions(metrics=("phase:gap", "phase:import"), judge_service_gap=False))
    assert [c.name for c in judged.failed] == ["phase:gap"]
    assert [c.name for c in judged.checks][-2:] == ["phase:gap", "phase:import"]
