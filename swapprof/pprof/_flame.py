"""A self-contained HTML flame graph of any profile: inline data, SVG drawn by a little script.

No network access: the page carries the call tree as JSON and draws it with inline JavaScript.
Click a frame to zoom into it, click the bottom bar to zoom out; type in the box to highlight.
"""

from __future__ import annotations

import html
import json
from typing import Any

from swapprof.pprof._model import Profile

#: Frames worth less than this share of the total are left out (the page stays small).
MIN_SHARE = 1e-4

_SCRIPT = """
const data = JSON.parse(document.getElementById('flame-data').textContent);
const chart = document.getElementById('chart'), info = document.getElementById('info');
const search = document.getElementById('search'), ROW = 17, nodes = [];
let focus = data.root;
(function index(n, parent) { n.p = parent; n.i = nodes.push(n) - 1; (n.c || []).forEach(c => index(c, n)); })(data.root, null);
function depth(n) { let d = 0; for (const c of n.c || []) d = Math.max(d, depth(c)); return d + 1; }
function fmt(v) {
  const u = data.unit, scales = u === 'nanoseconds' ? [[1e9, 's'], [1e6, 'ms'], [1e3, 'us'], [1, 'ns']]
    : u === 'bytes' ? [[1 << 30, 'GiB'], [1 << 20, 'MiB'], [1 << 10, 'KiB'], [1, 'B']] : [[1, '']];
  for (const [s, name] of scales) if (Math.abs(v) >= s || s === 1) return (v / s).toFixed(s === 1 ? 0 : 2) + name;
}
function esc(t) { return t.replace(/[&<>"]/g, ch => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'})[ch]); }
function hue(name) { let h = 0; for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) % 997; return h; }
function render() {
  const width = chart.clientWidth || 1200, ancestors = [];
  for (let a = focus.p; a; a = a.p) ancestors.unshift(a);
  const rows = ancestors.length + depth(focus), height = rows * ROW, out = [], term = search.value;
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`);
  function bar(n, x, w, row, faded) {
    const y = height - (row + 1) * ROW, hit = term && n.n.includes(term);
    const fill = hit ? '#e040fb' : `hsl(${20 + hue(n.n) % 40}, ${faded ? 20 : 80}%, ${60 + hue(n.f) % 15}%)`;
    const pct = (100 * n.v / data.root.v).toFixed(2), label = w > 35 ? esc(n.n).slice(0, Math.floor(w / 7)) : '';
    out.push(`<g data-i="${n.i}"><rect x="${x}" y="${y}" width="${Math.max(w - 0.5, 0.5)}" height="${ROW - 1}" fill="${fill}">` +
      `<title>${esc(n.n)}\\n${esc(n.f)}\\n${fmt(n.v)} (${pct}%)</title></rect>` +
      `<text x="${x + 3}" y="${y + ROW - 5}">${label}</text></g>`);
  }
  ancestors.forEach((a, row) => bar(a, 0, width, row, true));
  (function draw(n, x, w, row) {
    if (w < 0.3) return;
    bar(n, x, w, row, false);
    let cx = x;
    for (const c of n.c || []) { const cw = w * c.v / n.v; draw(c, cx, cw, row + 1); cx += cw; }
  })(focus, 0, width, ancestors.length);
  out.push('</svg>');
  chart.innerHTML = out.join('');
  info.textContent = `${data.kind}/${data.unit}: ${fmt(focus.v)} of ${fmt(data.root.v)} in view`;
}
chart.addEventListener('click', e => { const g = e.target.closest('g'); if (g) { focus = nodes[+g.dataset.i]; render(); } });
search.addEventListener('input', render);
window.addEventListener('resize', render);
render();
"""

_STYLE = """body{font:13px sans-serif;margin:12px}#chart text{font:11px monospace;pointer-events:none}
#chart rect{cursor:pointer;stroke:#fff;stroke-width:.3}h1{font-size:16px}#search{margin-left:1em}"""


def call_tree(profile: Profile, index: int) -> dict[str, Any]:
    """Merge stacks root first into a tree of {"n": name, "f": file, "v": value, "c": [children]}."""
    root: dict[str, Any] = {"n": "all", "f": "", "v": 0, "k": {}}
    for (stack, _labels), values in profile.samples.items():
        value = max(values[index], 0)  # deltas may be negative; a flame graph shows growth
        if not value:
            continue
        node = root
        node["v"] += value
        for name, filename, _first, _line in reversed(stack):
            node = node["k"].setdefault((name, filename), {"n": name, "f": filename, "v": 0, "k": {}})
            node["v"] += value
    floor = root["v"] * MIN_SHARE

    def finish(node: dict[str, Any]) -> dict[str, Any]:
        kids = sorted((k for k in node.pop("k").values() if k["v"] >= floor), key=lambda k: (k["n"], k["f"]))
        if kids:
            node["c"] = [finish(k) for k in kids]
        return node

    return finish(root)


def flame_html(profile: Profile, sample_type: str | None = None, title: str = "swapprof flame graph") -> str:
    """The page as a string; ``sample_type`` picks the value shown (default: the profile's default)."""
    index = profile.sample_type_index(sample_type)
    kind, unit = profile.sample_types[index]
    data = {"kind": kind, "unit": unit, "root": call_tree(profile, index)}
    payload = json.dumps(data, separators=(",", ":"))
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    heading = html.escape(title)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>'
        f"<style>{_STYLE}</style></head>\n<body><h1>{heading}</h1>\n"
        f'<div><span id="info"></span><input id="search" placeholder="highlight functions"></div>\n'
        f'<div id="chart"></div>\n<script type="application/json" id="flame-data">{payload}</script>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )
