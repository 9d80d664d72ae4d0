"""Panel and query builders: each returns the plain JSON dict Grafana stores.

Plain dicts instead of grafana-foundation-sdk: the two dashboards use five panel kinds, so a
builder per kind is shorter than the SDK's fluent calls, adds no dependency, and emits exactly
the JSON that is committed and diffed. The SDK also needs careful pinning: its releases carry a
version epoch (``1769699998!10.1.0``), so pip's "latest" is a build for Grafana 10.1 that emits
schemaVersion 36, not the current one.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
FULL_WIDTH = 24


def query(expr: str, legend: str = "", *, instant: bool = False, heatmap: bool = False) -> Json:
    """One PromQL target; ``refId`` is set when the panel is built."""
    target: Json = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }
    if heatmap:
        target["format"] = "heatmap"
    return target


def _panel(kind: str, title: str, description: str, targets: list[Json], width: int, height: int) -> Json:
    for index, target in enumerate(targets):
        target["refId"] = chr(ord("A") + index)
    return {
        "id": 0,  # numbered by arrange()
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        "targets": targets,
    }


def timeseries(
    title: str,
    description: str,
    targets: list[Json],
    *,
    unit: str = "short",
    bars: bool = False,
    stack: bool = False,
    steps: bool = False,
    width: int = 12,
    height: int = 8,
) -> Json:
    panel = _panel("timeseries", title, description, targets, width, height)
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "lineInterpolation": "stepAfter" if steps else "linear",
        "fillOpacity": 60 if bars or stack else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
    }
    panel["fieldConfig"] = {"defaults": {"unit": unit, "min": 0, "custom": custom}, "overrides": []}
    panel["options"] = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel


def stat(title: str, description: str, targets: list[Json], *, unit: str = "none", width: int = 6) -> Json:
    panel = _panel("stat", title, description, targets, width, 4)
    panel["fieldConfig"] = {"defaults": {"unit": unit, "decimals": 0}, "overrides": []}
    panel["options"] = {
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "value_and_name",
    }
    return panel


def bargauge(title: str, description: str, targets: list[Json], *, unit: str, width: int = 12) -> Json:
    panel = _panel("bargauge", title, description, targets, width, 8)
    panel["fieldConfig"] = {"defaults": {"unit": unit, "min": 0}, "overrides": []}
    panel["options"] = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
    }
    return panel


def heatmap(title: str, description: str, target: Json, *, width: int = 12) -> Json:
    panel = _panel("heatmap", title, description, [target], width, 8)
    panel["fieldConfig"] = {
        "defaults": {"custom": {"scaleDistribution": {"type": "linear"}}},
        "overrides": [],
    }
    panel["options"] = {
        "calculate": False,
        "cellGap": 1,
        "color": {
            "mode": "scheme",
            "scheme": "Oranges",
            "scale": "exponential",
            "exponent": 0.5,
            "steps": 64,
        },
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": True},
        "yAxis": {"axisPlacement": "left", "unit": "s"},
        "legend": {"show": True},
    }
    return panel


def row(title: str) -> Json:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"h": 1, "w": FULL_WIDTH},
    }


def arrange(panels: list[Json]) -> list[Json]:
    """Give each panel an id and a place: left to right, wrapping at 24 columns; rows on their own line."""
    x = y = line_height = 0
    for number, panel in enumerate(panels, start=1):
        grid = panel["gridPos"]
        if panel["type"] == "row" or x + grid["w"] > FULL_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        grid["x"], grid["y"] = x, y
        panel["id"] = number
        x += grid["w"]
        line_height = max(line_height, grid["h"])
        if panel["type"] == "row":
            x, y, line_height = 0, y + grid["h"], 0
    return panels
