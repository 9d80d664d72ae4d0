"""The dashboards and rules are generated, committed, and shaped the way Grafana provisions them."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

import swapprof.dashboards as dashboards
from swapprof._errors import ConfigError
from swapprof.dashboards import _yaml
from swapprof.dashboards._cli import add_parser, run
from swapprof.dashboards._export import stale

COMMITTED = Path(__file__).resolve().parent.parent / "dashboards"
UIDS = {"swapprof-upgrades", "swapprof-runtime"}


def targets(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for panel in board["panels"] for t in panel.get("targets", [])]


def test_the_error_tree() -> None:  # the names are pinned in test_public_api
    assert issubclass(dashboards.GrafanaAuthError, dashboards.GrafanaError)
    assert issubclass(dashboards.MissingExtraError, ImportError)


def test_committed_files_are_what_the_code_generates() -> None:
    """Edit swapprof/dashboards/*.py, then run `swapprof dashboards export dashboards`."""
    assert stale(COMMITTED) == [], "dashboards/ is stale: run `swapprof dashboards export dashboards`"
    assert sorted(p.name for p in COMMITTED.glob("*.json")) == sorted(f"{uid}.json" for uid in UIDS)


def test_export_writes_then_check_finds_a_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    assert run(parser.parse_args(["dashboards", "export", str(out)])) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{u}.json" for u in UIDS), "rules.yml"])
    assert run(parser.parse_args(["dashboards", "export", str(out), "--check"])) == 0
    (out / "rules.yml").write_text("groups: []\n")
    assert run(parser.parse_args(["dashboards", "export", str(out), "--check"])) == 1
    assert "rules.yml" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write"):
        run(parser.parse_args(["dashboards", "export", str(blocker / "sub")]))


def test_dashboards_provision_from_files_without_inputs() -> None:
    for name, board in dashboards.build_dashboards().items():
        text = json.dumps(board)
        assert name == f"{board['uid']}.json" and board["uid"] in UIDS
        assert "__inputs" not in board and "${DS_" not in text
        assert board["id"] is None and board["schemaVersion"] >= 39
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert list(variables) == ["datasource", "job", "instance"]
        assert (
            variables["datasource"]["type"] == "datasource"
            and variables["datasource"]["query"] == "prometheus"
        )
        for var in ("job", "instance"):
            assert variables[var]["includeAll"] and variables[var]["allValue"] == ".*"
        for target in targets(board):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert 'job=~"$job", instance=~"$instance"' in target["expr"]
        upgrades = [a for a in board["annotations"]["list"] if a.get("name") == "Upgrades"]
        assert upgrades and upgrades[0]["expr"].startswith("changes(swapprof_generation{")


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    for board in dashboards.build_dashboards().values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
            area = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not area & cells, f"{panel['title']} overlaps another panel"
            cells |= area
            refs = [t["refId"] for t in panel.get("targets", [])]
            assert len(refs) == len(set(refs))


def test_every_named_metric_is_one_the_design_lists() -> None:
    design = {
        "swapprof_upgrades_total", "swapprof_upgrade_phase_duration_seconds", "swapprof_upgrade_time_to_ready_seconds",
        "swapprof_generation", "swapprof_generations_alive", "swapprof_drain_connections",
        "swapprof_forced_kills_total", "swapprof_reloads_total", "swapprof_reload_memory_growth_bytes",
        "swapprof_reload_stale_versions", "cpython_gc_duration_seconds", "cpython_gc_collections_total",
        "cpython_gc_collected_objects_total", "cpython_gc_uncollectable_objects_total",
        "swapprof_worker_scrape_errors_total",  # the master's failed reads of a worker's metrics
        "swapprof_bake_verdicts_total",  # --bake-window: how each bake ended
    }  # fmt: skip
    text = json.dumps(dashboards.build_dashboards()) + json.dumps(dashboards.build_rules())
    labels = {"swapprof_role", "cpython_gc_generation"}
    used = set(re.findall(r"\b(?:swapprof|cpython)_[a-z_]+", text)) - labels
    unknown = {name for name in used if not any(name == d or name.startswith(d + "_") for d in design)}
    assert unknown == set()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        ("0.95", '"0.95"'),
        ("true", '"true"'),
        ("{{ $value }} left", '"{{ $value }} left"'),
        ("a: b", '"a: b"'),
        ("swapprof \u2014 upgrades", "swapprof \u2014 upgrades"),
        ("`quoted` start", '"`quoted` start"'),
        (5, "5"),
        (0.5, "0.5"),
    ],
)
def test_yaml_scalars_read_back_as_themselves(value: object, text: str) -> None:
    assert _yaml.scalar(value) == text


def test_yaml_blocks_and_nesting() -> None:
    doc = {"groups": [{"name": "g", "rules": [{"record": "r", "expr": "a\n/\nb\n", "labels": {"q": "0.5"}}]}]}
    assert _yaml.dumps(doc, "head") == (
        "# head\ngroups:\n  - name: g\n    rules:\n      - record: r\n        expr: |-\n"
        '          a\n          /\n          b\n        labels:\n          q: "0.5"\n'
    )
