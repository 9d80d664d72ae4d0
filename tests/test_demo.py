"""``swapprof demo`` (what ``make demo`` runs), end to end with fewer upgrades."""

from __future__ import annotations

import io
import re

from swapprof._demo import run_demo


def test_demo_upgrades_both_ways_with_no_failed_request() -> None:
    out = io.StringIO()
    code = run_demo(upgrades=2, out=out)
    text = out.getvalue()
    assert code == 0, text
    assert text.count("success  ready in") == 4  # two upgrades per server
    assert text.count("failed: 0") == 2
    assert "master pid unchanged: True" in text
    assert "swapprof.upgrade" in text or "requested" in text  # the waterfall
    match = re.search(r"time_to_ready median: exec ([\d.]+) ms, zygote ([\d.]+) ms", text)
    assert match, text
    assert float(match.group(2)) < float(match.group(1))  # a fork beats an interpreter start
    assert text.rstrip().endswith("all upgrades succeeded with zero failed requests")
