"""Every PromQL expression of the dashboards and rules runs against a real Prometheus with data.

Prometheus scrapes the master (debug address) and the generations (app address) of a reference
server through upgrades, a rollback (import error), a forced kill (an old generation that hangs
in its lifespan shutdown) and in-place reloads, with dashboards/rules.yml loaded. Then each
panel query, annotation, variable and rule expression must run without error; panel, annotation
and recording expressions must return data; alert expressions (legitimately empty in a short
run) must name only series that exist.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swapprof.dashboards import build_dashboards, build_rules
from swapprof.testing import ServerProcess
from tests._apps import set_fault, write_faulty_app
from tests._prometheus import Prometheus

RULES = Path(__file__).resolve().parent.parent / "dashboards" / "rules.yml"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: what Grafana would substitute; windows wide enough to hold the whole short run
GRAFANA_VARIABLES = {
    "job": ".*",
    "instance": ".*",
    "__rate_interval": "2m",
    "__interval": "30s",
    "__range": "10m",
}
KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}

# An app that also tracks GC pauses and in-place reloads (GET /reload), and whose lifespan
# shutdown hangs while HANG_ON_EXIT exists (so the master must SIGKILL it after draining).
RUNTIME_APP = """
import pathlib
import time

import faultyapp  # FAULT=import makes this import fail: a rollback
import reloadme
from swapprof.gc import GCMonitor
from swapprof.reload import ReloadTracker

HERE = pathlib.Path(__file__).parent
MONITOR = GCMonitor().install()
TRACKER = ReloadTracker([reloadme], tracemalloc_frames=1)


async def _respond(send, body):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if (HERE / "HANG_ON_EXIT").exists():
                    time.sleep(60)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and scope["path"] == "/reload":
        record = TRACKER.reload()
        await _respond(send, str(record.retained_bytes).encode())
        return
    await faultyapp.app(scope, receive, send)
"""
RELOADED = """
import keeper

TABLE = bytearray(100_000)


def handler():
    return len(TABLE)


keeper.HANDLERS.append(handler)  # keeps each earlier version's function alive: stale versions
"""


def grafana_expand(expr: str) -> str:
    expanded = re.sub(
        r"\$(__rate_interval|__interval|__range|job|instance)\b", lambda m: GRAFANA_VARIABLES[m[1]], expr
    )
    assert "$" not in expanded, expanded
    return expanded


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, labels, keywords or numbers)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", text):
        if match[0] not in KEYWORDS and not text[match.end() :].lstrip().startswith("("):
            names.add(match[0])
    return names


def test_metric_names_finds_selectors_only() -> None:
    expr = (
        'sum by (job) ((increase(a_total{x="b c"}[5m]) > 0) or (a_total unless a_total offset 5m)) '
        "* on (job) group_left (g) x:rec:y > 1.5e3 and vector(0)"
    )
    assert metric_names(expr) == {"a_total", "x:rec:y"}


def panel_queries() -> Iterator[tuple[str, str]]:
    for board in build_dashboards().values():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield (
                    f"{board['uid']} / panel {panel['id']} {panel['title']} / {target['refId']}",
                    target["expr"],
                )
        for annotation in board["annotations"]["list"]:
            if "expr" in annotation:
                yield f"{board['uid']} / annotation {annotation['name']}", annotation["expr"]


def rule_expressions() -> Iterator[tuple[str, str, bool]]:
    """(name, expr, is_alert) for every rule."""
    for group in build_rules()["groups"]:
        for rule in group["rules"]:
            labels = "".join(f" {k}={v}" for k, v in rule.get("labels", {}).items() if "record" in rule)
            yield (rule.get("record") or rule["alert"]) + labels, rule["expr"], "alert" in rule


def _get(url: str, timeout: float = 10.0) -> bytes:
    with OPENER.open(url, timeout=timeout) as answer:
        body: bytes = answer.read()
        return body


def _query(prom: Prometheus, name: str, expr: str) -> list[dict[str, Any]]:
    """Run an instant query; a rejected expression fails with Prometheus's own error message."""
    try:
        return prom.query(expr)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{name}: Prometheus rejected {expr!r}: {exc.read().decode()}") from None


def _forced_kill_upgrade(server: ServerProcess, app_dir: Path) -> dict[str, Any]:
    """Upgrade while the serving generation's lifespan shutdown hangs: the master SIGKILLs it."""
    (app_dir / "HANG_ON_EXIT").write_text("")
    try:
        return server.upgrade()
    finally:
        (app_dir / "HANG_ON_EXIT").unlink()


def _drive(server: ServerProcess, app_dir: Path) -> list[dict[str, Any]]:
    records = [server.upgrade(), server.upgrade()]
    set_fault(app_dir, "import")
    records.append(server.upgrade())
    set_fault(app_dir, "")
    records.append(_forced_kill_upgrade(server, app_dir))
    for _ in range(3):
        _get(f"{server.url}/reload")
    return records


def _check_all_return_data(
    prom: Prometheus, queries: dict[str, str], timeout: float = 45.0
) -> dict[str, int]:
    """Poll until every query returns a result; each poll also proves the query is valid."""
    sizes: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while True:
        sizes = {name: len(_query(prom, name, expr)) for name, expr in queries.items()}
        empty = sorted(name for name, size in sizes.items() if size == 0)
        if not empty:
            return sizes
        if time.monotonic() > deadline:
            raise AssertionError("no data for:\n" + "\n".join(f"  {n}: {queries[n]}" for n in empty))
        time.sleep(0.5)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    directory = write_faulty_app(tmp_path / "app")
    (directory / "runtimeapp.py").write_text(RUNTIME_APP)
    (directory / "reloadme.py").write_text(RELOADED)
    (directory / "keeper.py").write_text("HANDLERS = []\n")
    return directory


def test_every_dashboard_and_rule_expression_runs_on_real_data(app_dir: Path) -> None:
    args = ["--app-dir", str(app_dir), "--drain-grace", "0.1", "--debug-insecure-app-routes"]
    with ServerProcess("runtimeapp:app", args=args) as server:
        targets = {"swapprof_master": [server.status()["debug_address"]], "swapprof_app": [server.address]}
        with Prometheus(targets, rule_files=[str(RULES)]) as prom:
            prom.wait_value('min(up{job=~"swapprof_.*"})', lambda v: v == 1)
            records = _drive(server, app_dir)
            assert [r["outcome"] for r in records] == ["success", "success", "rolled_back", "success"], (
                records
            )
            assert records[2]["reason"] == "import_error" and records[3].get("forced_kill"), records
            prom.wait_value("sum(swapprof_upgrades_total)", lambda v: v == 4)
            prom.wait_value('sum(swapprof_forced_kills_total{job="swapprof_master"})', lambda v: v == 1)
            prom.wait_value('sum(swapprof_reloads_total{job="swapprof_app"})', lambda v: v >= 3)
            _check_everything(prom)


def _check_everything(prom: Prometheus) -> None:
    panels = {name: grafana_expand(expr) for name, expr in panel_queries()}
    rules = list(rule_expressions())
    recordings = {name: expr for name, expr, alert in rules if not alert}
    sizes = _check_all_return_data(prom, {**panels, **recordings})
    assert (len(panels), len(recordings), len(sizes)) == (36, 9, 45)
    # alert conditions may be empty in a short run: they must run, and select series that exist
    alerts = {name: expr for name, expr, alert in rules if alert}
    for name, expr in alerts.items():
        _query(prom, name, expr)
    for name, expr in {**panels, **alerts}.items():
        for metric in metric_names(expr):
            assert prom.query(f"count({metric})"), f"{name} selects {metric}, which has no series"
    _check_variables(prom)
    _check_loaded_rules(prom, len(rules))


def _check_variables(prom: Prometheus) -> None:
    for board in build_dashboards().values():
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            found = re.fullmatch(r"label_values\((.+), (\w+)\)", grafana_expand(variable["definition"]))
            assert found, variable["definition"]
            values = prom.api(f"label/{found[2]}/values", **{"match[]": found[1]})
            assert len(values) == 2, (variable["name"], values)  # master and generations


def _check_loaded_rules(prom: Prometheus, expected: int) -> None:
    loaded = [rule for group in prom.api("rules")["groups"] for rule in group["rules"]]
    assert len(loaded) == expected
    broken = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert broken == []
