"""The gate's statistics, rules, document checks and reports, on synthetic bench documents."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from swapprof._errors import ConfigError
from swapprof.gate import (
    GateOptions,
    compare,
    load_results,
    render_html,
    render_junit,
    render_markdown,
    write_results,
)
from swapprof.gate._document import document
from swapprof.gate._load import Result
from swapprof.gate._schema import validate
from swapprof.gate._stats import bootstrap_ratio, latency_summary, percentile

MS = 1_000_000


def make_doc(
    ttr: list[float], *, import_extra: float = 0.0, errors: int = 0, slow_ms: float = 50.0
) -> dict[str, Any]:
    """A results document as a bench would write it: one upgrade per time_to_ready value."""
    results, entries, windows, t = [], [], [], 1000 * MS
    for i, value in enumerate(ttr):
        phases = {
            "spawn": value * 0.5,
            "import": value * 0.4 + import_extra,
            "ready": value * 0.1,
            "drain": 40.0,
        }
        total = sum(phases.values())
        entries.append(
            {
                "index": i + 1,
                "source": "server",
                "outcome": "success",
                "reason": "ok",
                "new_generation": i + 2,
                "phases_ms": phases,
                "spans_ms": [
                    ["spawn", 0.0, phases["spawn"]],
                    ["import", phases["spawn"], total - 40],
                    ["drain", total - 40, total],
                ],
                "time_to_ready_ms": value + import_extra,
                "upgrade_total_ms": total,
            }
        )
        windows.append((t, t + int(total * MS)))
        for j in range(40):  # one slow request in 20 inside the window, the rest fast
            start = t + j * 5 * MS
            results.append(
                Result(start, start + int((slow_ms if j % 20 == 0 else 1.0) * MS), "/", 200, None, i + 2)
            )
        for j in range(40):  # steady state after the window
            start = t + int(total * MS) + (j + 1) * 10 * MS
            results.append(Result(start, start + MS, "/", 200, None, i + 2))
        t += 2000 * MS
    results += [Result(t + k * MS, t + k * MS + MS, "/", 0, "refused") for k in range(errors)]
    doc = document(results, entries, windows, 0, 500 * MS, t + 100 * MS)
    doc.update(
        machine={"python": "3.11", "cpus": 2, "versions": {"swapprof": "0"}},
        target={"kind": "reference", "app": "swapprof.server.demo:app"},
        config={"upgrades": len(ttr), "load": {"rate": 100.0}},
        generations=[],
    )
    return doc


BASE = [400.0, 430.0, 380.0, 410.0, 395.0]


def test_percentile_and_summary() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    summary = latency_summary([1.0, 2.0, 3.0, 4.0])
    assert summary["n"] == 4 and summary["max"] == 4.0 and summary["p50"] == 2.5


def test_bootstrap_is_seeded_and_ordered() -> None:
    one = bootstrap_ratio(BASE, [v * 1.5 for v in BASE], seed=7)
    assert one == bootstrap_ratio(BASE, [v * 1.5 for v in BASE], seed=7)
    assert one.low <= one.ratio <= one.high and one.ratio == pytest.approx(1.5)


def test_document_splits_requests_into_windows_and_steady_state() -> None:
    doc = make_doc(BASE)
    assert doc["requests"]["upgrade"] == 40 * len(BASE) and doc["requests"]["steady"] == 40 * len(BASE)
    assert doc["latency_ms"]["steady"]["max"] == pytest.approx(1.0)
    assert doc["samples"]["upgrade_p99_ms"] == [pytest.approx(50.0, abs=1)] * len(BASE)
    assert doc["upgrades"][0]["first_new_answer_ms"] is not None
    assert sum(doc["timeline"]["n"]) == doc["requests"]["total"]


def test_same_build_passes() -> None:
    verdict = compare(make_doc(BASE), make_doc([405.0, 415.0, 390.0, 420.0, 398.0]))
    assert verdict.passed, [c.message for c in verdict.checks]
    assert [c.name for c in verdict.checks] == ["errors", "upgrades", "time_to_ready", "upgrade_p99"]


def test_slower_import_fails_on_time_to_ready_and_names_the_phase() -> None:
    verdict = compare(make_doc(BASE), make_doc(BASE, import_extra=150.0))
    assert [c.name for c in verdict.failed] == ["time_to_ready"]
    check = verdict.failed[0]
    assert check.estimate is not None and check.estimate.low > 1.2
    assert check.details[0].startswith("phase import:") and "+150.0 ms" in check.details[0]


def test_noise_alone_is_not_a_regression() -> None:
    noisy = [300.0, 700.0, 350.0, 650.0, 520.0]  # median +30%, but the spread overlaps the baseline
    verdict = compare(make_doc(BASE), make_doc(noisy))
    assert verdict.passed, verdict.checks[2].message


def test_errors_and_failed_upgrades_fail_unless_allowed() -> None:
    dropping = make_doc(BASE, errors=3)
    dropping["upgrades"][1]["outcome"] = "rolled_back"
    verdict = compare(make_doc(BASE), dropping)
    assert {c.name for c in verdict.failed} == {"errors", "upgrades"}
    assert "refused 3" in verdict.failed[0].details[0]
    assert compare(make_doc(BASE), dropping, GateOptions(max_errors=3, max_failed_upgrades=1)).passed


def test_caps_and_missing_samples() -> None:
    opts = GateOptions(caps={"time_to_ready": 300.0})
    assert [c.name for c in compare(make_doc(BASE), make_doc(BASE), opts).failed] == ["cap:time_to_ready"]
    empty = make_doc(BASE)
    empty["samples"]["time_to_ready_ms"] = []
    assert compare(empty, make_doc(BASE)).checks[2].status == "skip"
    assert compare(make_doc(BASE), empty).checks[2].status == "fail"
    with pytest.raises(ConfigError, match="unknown metric"):
        GateOptions(metrics=("speed",))


def test_documents_are_checked(tmp_path: Path) -> None:
    doc = make_doc(BASE)
    write_results(doc, tmp_path / "ok.json")
    assert load_results(tmp_path / "ok.json")["samples"] == doc["samples"]
    cases = {
        "not json {": "not valid JSON",
        "[1, 2]": "expected a JSON object",
        '{"samples": {}}': 'no "schema" field',
        '{"schema": "swapprof.bench/9"}': "unsupported schema 'swapprof.bench/9'",
        '{"schema": "other/1"}': "is not a swapprof bench result",
    }
    for i, (text, message) in enumerate(cases.items()):
        (tmp_path / f"{i}.json").write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_results(tmp_path / f"{i}.json")
    broken = json.loads(json.dumps(doc))
    broken["samples"]["time_to_ready_ms"] = ["fast"]
    with pytest.raises(ConfigError, match=r"'samples\.time_to_ready_ms' must be an array of numbers"):
        validate(broken, "x.json")
    with pytest.raises(ConfigError, match="no such file"):
        load_results(tmp_path / "missing.json")


def test_reports_name_the_failed_check() -> None:
    verdict = compare(make_doc(BASE), make_doc(BASE, import_extra=150.0, errors=2))
    markdown = render_markdown(verdict)
    assert markdown.startswith("## ❌ swapprof gate: regression in errors, time_to_ready")
    assert "| time_to_ready |" in markdown and "phase import" in markdown
    suite = ET.fromstring(render_junit(verdict)).find("testsuite")
    assert suite is not None and suite.get("failures") == "2"
    failures = {case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None}
    assert failures == {"errors", "time_to_ready"}
    page = render_html(verdict)
    assert page.count("<svg") == 6 and "<script" not in page and "https://" not in page
    assert "regression in errors, time_to_ready" in page
