"""The gunicorn recipe (examples/gunicorn): USR2 + WINCH + QUIT measured from the client side."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from swapprof.gate._cli import bench
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
