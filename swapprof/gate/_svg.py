"""Inline SVG pictures of a results document: latency over time, phase waterfall, sample dots."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from html import escape
from typing import Any

from swapprof._vocabulary import OTHER_COLOUR, PHASE_COLOURS

W, LEFT, RIGHT = 860, 56, 16
SERIES = (("max_ms", "#ced4da", "max"), ("p99_ms", "#e8590c", "p99"), ("p50_ms", "#1c7ed6", "p50"))


def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(value))
    return next(m * step for m in (1, 2, 2.5, 5, 10) if m * step >= value)


def _axis(x0: float, x1: float, y0: float, y1: float, top: float, unit: str) -> list[str]:
    out = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#868e96"/>']
    for i in range(5):
        y = y0 - (y0 - y1) * i / 4
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#f1f3f5"/>')
        out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{top * i / 4:g}{unit}</text>')
    return out


def latency_chart(doc: dict[str, Any], height: int = 230) -> str:
    """p50/p99/max client latency per time bucket; upgrade windows shaded; errors as red marks."""
    tl, bottom, top_px = doc.get("timeline") or {}, height - 28, 22
    times = tl.get("t_s") or [0.0]
    span = float(max(float(doc.get("duration_s") or 0), times[-1] + tl.get("bucket_s", 0.1), 0.1))
    peak = max((v for v in tl.get("p99_ms") or [] if v is not None), default=1.0)
    ymax = nice_max(peak * 1.15)

    def x(t: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * t / span

    def y(ms: float) -> float:
        return bottom - (bottom - top_px) * min(ms, ymax) / ymax

    out = [f'<svg class="chart" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img">']
    for up in doc.get("upgrades", []):
        if isinstance(up.get("start_s"), int | float) and isinstance(up.get("end_s"), int | float):
            tip = escape(
                f"upgrade {up.get('index')}: {up.get('outcome')}, ready {up.get('time_to_ready_ms')} ms"
            )
            out.append(
                f'<rect x="{x(up["start_s"]):.1f}" y="{top_px}" width="{max(1.0, x(up["end_s"]) - x(up["start_s"])):.1f}"'
                f' height="{bottom - top_px}" fill="#fff3bf"><title>{tip}</title></rect>'
            )
    for start, end in doc.get("yardstick_windows_s") or []:
        out.append(
            f'<rect x="{x(start):.1f}" y="{top_px}" width="{max(1.0, x(end) - x(start)):.1f}"'
            f' height="{bottom - top_px}" fill="#e9ecef"><title>yardstick timing</title></rect>'
        )
    out += _axis(LEFT, W - RIGHT, bottom, top_px, ymax, " ms")
    for key, colour, _ in SERIES:
        values = tl.get(key) or []
        segment: list[str] = []
        for t, v in [*zip(times, values, strict=False), (0.0, None)]:
            if v is None:
                if len(segment) > 1:
                    out.append(
                        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(segment)}"/>'
                    )
                segment = []
            else:
                segment.append(f"{x(t + tl.get('bucket_s', 0) / 2):.1f},{y(v):.1f}")
    for t, n in zip(times, tl.get("errors") or [], strict=False):
        if n:
            out.append(
                f'<rect x="{x(t):.1f}" y="{bottom - 8}" width="3" height="8" fill="#e03131"><title>{n} errors</title></rect>'
            )
    step = nice_max(span / 6)
    for i in range(int(span / step) + 1):
        out.append(
            f'<text x="{x(i * step):.1f}" y="{bottom + 16}" text-anchor="middle">{i * step:g} s</text>'
        )
    legend = [(c, n) for _, c, n in SERIES] + [
        ("#fff3bf", "upgrade window"),
        ("#e9ecef", "yardstick"),
        ("#e03131", "errors"),
    ]
    for i, (colour, name) in enumerate(legend):
        out.append(f'<rect x="{LEFT + 10 + i * 110}" y="1" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{LEFT + 24 + i * 110}" y="10">{name}</text>')
    return "".join(out) + "</svg>"


def waterfall(doc: dict[str, Any], scale_ms: float, row: int = 20) -> str:
    """One row per upgrade, its phases laid out from the request (same scale for both runs)."""
    ups = doc.get("upgrades", [])
    height = row * len(ups) + 24
    width_px = W - 150 - RIGHT
    out = [f'<svg class="chart" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img">']
    for i, up in enumerate(ups):
        y0 = 4 + i * row
        total = up.get("upgrade_total_ms")
        label = f"#{up.get('index')} {up.get('outcome')}" + (f" {total:.0f} ms" if total is not None else "")
        out.append(f'<text x="0" y="{y0 + 13}">{escape(label)}</text>')
        for phase, start, end in up.get("spans_ms") or []:
            tip = escape(f"{phase} {end - start:.1f} ms (at +{start:.1f} ms)")
            out.append(
                f'<rect x="{150 + width_px * start / scale_ms:.1f}" y="{y0}" width="{max(1.0, width_px * (end - start) / scale_ms):.1f}"'
                f' height="{row - 5}" fill="{PHASE_COLOURS.get(phase, OTHER_COLOUR)}"><title>{tip}</title></rect>'
            )
    for i in range(6):
        x = 150 + width_px * i / 5
        out.append(
            f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">{scale_ms * i / 5:.0f} ms</text>'
        )
    return "".join(out) + "</svg>"


def dots(base: Sequence[float], cur: Sequence[float], unit: str = " ms") -> str:
    """The samples of both runs on one axis; the median of each as a bar."""
    top = nice_max(max([*base, *cur, 1.0]) * 1.05)
    out = [f'<svg class="chart" viewBox="0 0 {W} 64" width="{W}" height="64" role="img">']

    def x(v: float) -> float:
        return LEFT + 40 + (W - LEFT - 40 - RIGHT) * v / top

    for row, (name, values, colour) in enumerate(
        (("baseline", base, "#868e96"), ("current", cur, "#1c7ed6"))
    ):
        y = 14 + row * 22
        out.append(f'<text x="0" y="{y + 4}">{name}</text>')
        out += [
            f'<circle cx="{x(v):.1f}" cy="{y}" r="4" fill="{colour}" fill-opacity=".6"><title>{v:.1f}{unit}</title></circle>'
            for v in values
        ]
        if values:
            mid = statistics.median(values)
            out.append(f'<line x1="{x(mid):.1f}" x2="{x(mid):.1f}" y1="{y - 8}" y2="{y + 8}" stroke="#000"/>')
    out += [
        f'<text x="{x(top * i / 4):.1f}" y="60" text-anchor="middle">{top * i / 4:g}{unit}</text>'
        for i in range(5)
    ]
    return "".join(out) + "</svg>"
