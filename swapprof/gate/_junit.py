"""The gate's verdict as JUnit XML: one test case per check, so CI test views list them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from swapprof.gate._verdict import Verdict

SUITE = "swapprof.gate"


def render_junit(verdict: Verdict) -> str:
    checks = verdict.checks
    suites = ET.Element("testsuites", name="swapprof gate")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=SUITE,
        tests=str(len(checks)),
        failures=str(sum(c.status == "fail" for c in checks)),
        errors="0",
        skipped=str(sum(c.status == "skip" for c in checks)),
        timestamp=str(verdict.current.get("created", "")),
    )
    props = ET.SubElement(suite, "properties")
    opts = verdict.options
    for name, value in (
        ("threshold", opts.threshold),
        ("confidence", opts.confidence),
        ("resamples", opts.resamples),
        ("seed", opts.seed),
        ("baseline_commit", verdict.baseline["machine"].get("git_commit")),
        ("current_commit", verdict.current["machine"].get("git_commit")),
    ):
        ET.SubElement(props, "property", name=name, value=str(value))
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname=SUITE, name=check.name, time="0")
        body = "\n".join([check.message, *check.details])
        if check.status == "fail":
            failure = ET.SubElement(
                case, "failure", message=f"{check.title}: {check.message}", type="regression"
            )
            failure.text = body
        elif check.status == "skip":
            ET.SubElement(case, "skipped", message=check.message)
        else:
            ET.SubElement(case, "system-out").text = body
    if verdict.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(verdict.notes)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
