"""Pins swapprof.gate's public API and the results schema name (CI jobs and dashboards use them)."""

from __future__ import annotations

import swapprof.gate


def test_gate_exports() -> None:
    assert set(swapprof.gate.__all__) == {
        "ERROR_KINDS",
        "SCHEMA",
        "BenchConfig",
        "Check",
        "CommandTarget",
        "GateOptions",
        "LoadGenerator",
        "LoadSpec",
        "RatioEstimate",
        "ReferenceTarget",
        "Result",
        "Target",
        "Verdict",
        "bench",
        "bootstrap_ratio",
        "compare",
        "error_counts",
        "load_results",
        "render_html",
        "render_junit",
        "render_markdown",
        "validate",
        "write_results",
    }
    for name in swapprof.gate.__all__:
        assert getattr(swapprof.gate, name) is not None
    assert swapprof.gate.SCHEMA == "swapprof.bench/1"
    assert swapprof.gate.ERROR_KINDS == ("refused", "reset", "closed", "timeout", "http_5xx", "malformed")
