"""A real Prometheus scrapes the master through five upgrades."""

from __future__ import annotations

import math

from swapprof.testing import ServerProcess
from tests._prometheus import Prometheus


def test_prometheus_scrapes_upgrade_counters_and_phase_histograms() -> None:
    with ServerProcess(args=["--drain-grace", "0.1", "--debug-insecure-app-routes"]) as server:
        debug = server.status()["debug_address"]
        with Prometheus({"swapprof_master": [debug], "swapprof_app": [server.address]}) as prom:
            prom.wait_value('up{job="swapprof_master"}', lambda v: v == 1)
            for _ in range(5):
                assert server.upgrade()["outcome"] == "success"
            total = prom.wait_value('sum(swapprof_upgrades_total{job="swapprof_master"})', lambda v: v >= 5)
            assert total == 5
            ok = prom.wait_value('swapprof_upgrades_total{outcome="success",reason="ok"}', lambda v: v >= 5)
            assert ok == 5
            quantile = prom.query(
                'histogram_quantile(0.9, sum by (le, phase) (swapprof_upgrade_phase_duration_seconds_bucket{phase="spawn"}))'
            )
            value = float(quantile[0]["value"][1])
            assert math.isfinite(value) and 0 < value < 60
            prom.wait_value('swapprof_generation{job="swapprof_master"}', lambda v: v == 6)
            ready = prom.query("swapprof_upgrade_time_to_ready_seconds_count")
            assert float(ready[0]["value"][1]) == 5
            # each generation serves its own metrics through the app's listener
            prom.wait_value('swapprof_generation{job="swapprof_app"}', lambda v: v == 6, timeout=30)
            prom.wait_value('process_resident_memory_bytes{job="swapprof_app"}', lambda v: v > 0, timeout=30)
