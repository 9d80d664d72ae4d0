"""``swapprof report``: the span file turned into one waterfall per upgrade.

Terminal: a table per upgrade with each phase's offset, duration, process and a bar.
HTML (``--html FILE``): the same as a self-contained page with an SVG timeline per upgrade.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapprof._errors import ConfigError
from swapprof._vocabulary import OTHER_COLOUR, PHASE_COLOURS, phase_rank
from swapprof.telemetry._jsonl import read_spans

ROOT = "swapprof.upgrade"


@dataclass
class Upgrade:
    trace_id: str
    root: dict[str, Any]
    phases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> int:
        return int(self.root["start_ns"])

    @property
    def total_ms(self) -> float:
        return (int(self.root["end_ns"]) - self.start) / 1e6

    @property
    def outcome(self) -> str:
        return str(self.root["attributes"].get("swapprof.outcome", "?"))

    @property
    def reason(self) -> str:
        return str(self.root["attributes"].get("swapprof.reason", "?"))

    @property
    def pids(self) -> set[int]:
        return {s["resource"].get("process.pid") for s in [self.root, *self.phases]}


def load_upgrades(run_dir: str | Path) -> list[Upgrade]:
    path = Path(run_dir)
    if path.is_dir():
        path = path / "spans.jsonl"
    if not path.exists():
        raise ConfigError(f"no span file at {path}; is this a run dir of `swapprof serve`?")
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in read_spans(path):
        if span.get("trace_id") and span.get("start_ns") and span.get("end_ns"):
            traces[span["trace_id"]].append(span)
    upgrades = []
    for trace_id, spans in traces.items():
        root = next((s for s in spans if s["name"] == ROOT), None)
        if root is None:
            continue
        phases = sorted(
            (s for s in spans if s is not root),
            key=lambda s: (s["start_ns"], phase_rank(s["name"])),
        )
        upgrades.append(Upgrade(trace_id, root, phases))
    return sorted(upgrades, key=lambda u: u.start)


def render_text(upgrades: Sequence[Upgrade], width: int = 40) -> str:
    if not upgrades:
        return "no upgrades recorded yet"
    out = []
    for up in upgrades:
        attrs = up.root["attributes"]
        out.append(
            f"upgrade {attrs.get('swapprof.upgrade.id', '?')}  gen {attrs.get('swapprof.generation.old', '-')} -> "
            f"{attrs.get('swapprof.generation.new', '-')}  {up.outcome} ({up.reason})  total {up.total_ms:.1f} ms  "
            f"trace {up.trace_id}"
        )
        scale = width / max(up.total_ms, 1e-6)
        for span in up.phases:
            offset = max(0.0, (span["start_ns"] - up.start) / 1e6)
            length = (span["end_ns"] - span["start_ns"]) / 1e6
            lead = min(width - 1, int(offset * scale))
            bar = " " * lead + "#" * max(1, min(width - lead, round(length * scale)))
            who = f"{span['resource'].get('swapprof.role', '?')} {span['resource'].get('process.pid', '?')}"
            flag = " !" if span.get("status") == "ERROR" else ""
            out.append(
                f"  {span['name']:<9} +{offset:8.1f} {length:8.1f} ms  {who:<17} |{bar:<{width}}|{flag}"
            )
        out.append("")
    return "\n".join(out).rstrip()


def render_html(upgrades: Sequence[Upgrade], title: str = "swapprof upgrades") -> str:
    rows = []
    for up in upgrades:
        attrs = up.root["attributes"]
        bar_w, row_h = 760.0, 22
        scale = bar_w / max(up.total_ms, 1e-6)
        svg = [f'<svg width="{bar_w + 250:.0f}" height="{row_h * (len(up.phases) + 1) + 10}" role="img">']
        for i, span in enumerate(up.phases):
            offset = (span["start_ns"] - up.start) / 1e6
            length = (span["end_ns"] - span["start_ns"]) / 1e6
            y = 5 + i * row_h
            colour = PHASE_COLOURS.get(span["name"], OTHER_COLOUR)
            who = (
                f"{span['resource'].get('swapprof.role', '?')} pid {span['resource'].get('process.pid', '?')}"
            )
            label = html.escape(f"{span['name']} {length:.1f} ms ({who})")
            svg.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(span["name"])}</text>')
            svg.append(
                f'<rect x="{80 + offset * scale:.1f}" y="{y}" width="{max(1.0, length * scale):.1f}" height="{row_h - 4}"'
                f' fill="{colour}"><title>{label}</title></rect>'
            )
            svg.append(
                f'<text x="{84 + min(bar_w, (offset + length) * scale):.1f}" y="{y + 15}" font-size="11">'
                f"{length:.1f} ms · {html.escape(who)}</text>"
            )
        svg.append("</svg>")
        head = html.escape(
            f"upgrade {attrs.get('swapprof.upgrade.id', '?')}: gen {attrs.get('swapprof.generation.old', '-')} -> "
            f"{attrs.get('swapprof.generation.new', '-')}, {up.outcome} ({up.reason}), total {up.total_ms:.1f} ms"
        )
        rows.append(f"<section><h2>{head}</h2><p class=t>trace {up.trace_id}</p>{''.join(svg)}</section>")
    legend = " ".join(
        f'<span style="background:{c}">&nbsp;{n}&nbsp;</span>' for n, c in PHASE_COLOURS.items()
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}h2{font-size:1.05em;margin:1.2em 0 .2em}"
        ".t{color:#868e96;font-size:.8em;margin:0}</style>"
        f"<h1>{html.escape(title)}</h1><p>{legend}</p>{''.join(rows) or '<p>no upgrades recorded yet</p>'}"
    )
