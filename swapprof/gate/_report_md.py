"""The gate's verdict as Markdown, fit for a CI job summary (``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

from typing import Any

from swapprof.gate._phases import phase_table
from swapprof.gate._verdict import Check, Verdict

MARK = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⚪ skip"}


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _cell(check: Check, value: float | None) -> str:
    unit = " ms" if check.estimate is not None or check.name.startswith("cap:") else ""
    return _num(value, unit)


def _current(check: Check) -> str:
    text = _cell(check, check.current)
    if check.estimate is not None:
        est = check.estimate
        what = "normalised ratio" if check.normalized else "ratio"
        text += f" ({what} {est.ratio:.2f}x, {est.confidence:.0%} bounds {est.low:.2f}x to {est.high:.2f}x)"
    return text


def _run_line(name: str, doc: dict[str, Any]) -> str:
    m, cfg, load = doc["machine"], doc["config"], doc["config"].get("load", {})
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items() if v)
    commit = f", commit `{str(m['git_commit'])[:12]}`" if m.get("git_commit") else ""
    return (
        f"- **{name}**: {doc['target'].get('kind')} target, {cfg.get('upgrades')} upgrades, "
        f"{doc.get('requests', {}).get('total', '?')} requests ({doc.get('requests', {}).get('retried', 0)} retried), "
        f"load {load.get('clients')}+{load.get('new_clients')} clients at {load.get('rate') or 'max'} req/s; "
        f"Python {m.get('python')} on {m.get('cpus')} CPUs (load {m.get('loadavg')}){commit}; {versions}"
    )


def render_markdown(verdict: Verdict) -> str:
    failed = [c.name for c in verdict.failed]
    head = (
        f"## ❌ swapprof gate: regression in {', '.join(failed)}"
        if failed
        else "## ✅ swapprof gate: no regression"
    )
    opts = verdict.options
    lines = [
        head,
        "",
        f"Threshold +{opts.threshold:.0%} judged at {opts.confidence:.0%} confidence "
        f"(bootstrap of the ratio of medians, {opts.resamples} resamples, seed {opts.seed})"
        + (
            "; time_to_ready is judged relative to a machine-speed yardstick timed next to each upgrade."
            if any(c.normalized for c in verdict.checks)
            else "."
        ),
        "",
        "| check | baseline | current | limit | result |",
        "|---|---|---|---|---|",
    ]
    for c in verdict.checks:
        lines.append(f"| {c.title} | {_cell(c, c.baseline)} | {_current(c)} | {c.limit} | {MARK[c.status]} |")
    lines.append("")
    for c in verdict.checks:
        if c.status == "fail" or c.details:
            lines.append(f"- **{c.name}** ({c.status}): {c.message}")
            lines.extend(f"  - {d}" for d in c.details)
    lines += ["", "<details><summary>Phases (median ms over successful upgrades)</summary>", ""]
    lines += ["| phase | baseline | current | change |", "|---|---|---|---|"]
    for name, b, cur in phase_table(verdict.baseline, verdict.current):
        change = "-" if b is None or cur is None else f"{cur - b:+.1f}"
        lines.append(f"| `{name}` | {_num(b)} | {_num(cur)} | {change} |")
    lines += ["", "</details>", "", "<details><summary>Client latency (ms)</summary>", ""]
    lines += ["| window | baseline p50 / p99 / max | current p50 / p99 / max | requests (base / cur) |"]
    lines += ["|---|---|---|---|"]
    for window in ("steady", "upgrade"):
        b, cur = verdict.baseline["latency_ms"].get(window, {}), verdict.current["latency_ms"].get(window, {})
        trio = [" / ".join(_num(d.get(q)) for q in ("p50", "p99", "max")) for d in (b, cur)]
        lines.append(f"| {window} | {trio[0]} | {trio[1]} | {b.get('n', '-')} / {cur.get('n', '-')} |")
    lines += ["", "</details>", ""]
    if verdict.notes:
        lines += ["Notes:", *(f"- {n}" for n in verdict.notes), ""]
    lines += [_run_line("baseline", verdict.baseline), _run_line("current", verdict.current), ""]
    return "\n".join(lines)


def render_text(verdict: Verdict) -> str:
    """A few plain lines for the terminal."""
    lines = [f"{c.status.upper():4}  {c.name:<16} {c.message}" for c in verdict.checks]
    lines += [f"      {c.name:<16} {d}" for c in verdict.checks if c.status == "fail" for d in c.details]
    lines += [f"note: {n}" for n in verdict.notes]
    failed = ", ".join(c.name for c in verdict.failed)
    lines.append(f"swapprof gate: {'FAIL (' + failed + ')' if failed else 'pass'}")
    return "\n".join(lines)
