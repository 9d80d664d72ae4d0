"""The gate's verdict as one self-contained HTML page (inline SVG, no scripts, no fetches)."""

from __future__ import annotations

from html import escape
from typing import Any

from swapprof._vocabulary import PHASE_COLOURS
from swapprof.gate import _svg
from swapprof.gate._report_md import MARK
from swapprof.gate._verdict import Verdict, samples_of, title_of

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:960px}"
    "table{border-collapse:collapse}td,th{border:1px solid #dee2e6;padding:.3em .6em;text-align:left}"
    ".fail{background:#fff5f5}.pass{background:#f4fce3}.skip{color:#868e96}"
    "svg.chart{font-size:11px;display:block;margin:.4em 0 1em}h2{margin-top:1.6em}.t{color:#868e96}"
)


def _checks(verdict: Verdict) -> str:
    rows = []
    for c in verdict.checks:
        detail = "".join(f"<br><span class=t>{escape(d)}</span>" for d in c.details)
        rows.append(
            f"<tr class={c.status}><td>{escape(c.title)}</td><td>{escape(c.message)}{detail}</td>"
            f"<td>{escape(c.limit)}</td><td>{MARK[c.status]}</td></tr>"
        )
    return (
        "<table><tr><th>check</th><th>finding</th><th>limit</th><th>result</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _run(name: str, doc: dict[str, Any], scale_ms: float) -> str:
    m = doc["machine"]
    facts = escape(
        f"{doc['target'].get('kind')} target; {len(doc['upgrades'])} upgrades; "
        f"{doc.get('requests', {}).get('total', '?')} requests; errors {sum(doc['errors'].values())}; "
        f"Python {m.get('python')}, {m.get('cpus')} CPUs, load {m.get('loadavg')}; commit {m.get('git_commit') or '-'}"
    )
    return (
        f"<h2>{name}</h2><p class=t>{facts}</p><h3>Client latency over time</h3>{_svg.latency_chart(doc)}"
        f"<h3>Phases of each upgrade</h3>{_svg.waterfall(doc, scale_ms)}"
    )


def render_html(verdict: Verdict, title: str = "swapprof gate") -> str:
    base, cur = verdict.baseline, verdict.current
    totals = [
        end for doc in (base, cur) for up in doc["upgrades"] for _, _, end in (up.get("spans_ms") or [])
    ]
    scale_ms = _svg.nice_max(max(totals, default=1.0))
    head = "regression in " + ", ".join(c.name for c in verdict.failed) if verdict.failed else "no regression"
    samples = []
    for name in verdict.options.metrics:
        label = title_of(name)
        samples.append(f"<h3>{escape(label)}</h3>{_svg.dots(samples_of(base, name), samples_of(cur, name))}")
    legend = " ".join(
        f'<span style="background:{c}">&nbsp;{n}&nbsp;</span>' for n, c in PHASE_COLOURS.items()
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in verdict.notes)
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title><style>{STYLE}</style>"
        f"<h1>{escape(title)}: {escape(head)}</h1>{_checks(verdict)}"
        f"{'<ul>' + notes + '</ul>' if notes else ''}<h2>Samples</h2>{''.join(samples)}"
        f"<p>Phases: {legend}</p>{_run('Baseline', base, scale_ms)}{_run('Current', cur, scale_ms)}</html>\n"
    )
