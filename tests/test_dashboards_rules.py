"""dashboards/rules.yml passes `promtool check rules` and the unit tests in rules_test.yml."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests._prometheus import require

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"


def _promtool(*args: str) -> str:
    promtool = require("promtool", "prometheus")
    proc = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=DASHBOARDS)
    assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_promtool_checks_the_rules() -> None:
    out = _promtool("check", "rules", "rules.yml")
    assert "SUCCESS: 18 rules found" in out


def test_promtool_unit_tests_pass() -> None:
    out = _promtool("test", "rules", "rules_test.yml")
    assert "SUCCESS" in out


def test_every_alert_has_a_unit_test() -> None:
    from swapprof.dashboards import build_rules

    alerts = {r["alert"] for g in build_rules()["groups"] for r in g["rules"] if "alert" in r}
    tested = (DASHBOARDS / "rules_test.yml").read_text()
    assert {a for a in alerts if f"alertname: {a}\n" not in tested} == set()
    assert len(alerts) == 9


def test_the_example_prometheus_config_loads_the_rules() -> None:
    out = _promtool("check", "config", str(DASHBOARDS.parent / "examples" / "grafana" / "prometheus.yml"))
    assert "SUCCESS: 18 rules found" in out
