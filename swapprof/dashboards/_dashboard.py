"""The dashboard envelope: template variables, annotations, time settings, schema version.

No ``__inputs`` / ``${DS_...}``: those only work through the UI's import dialog and break file
provisioning. The data source is a ``datasource`` variable instead, so the same JSON works
provisioned from disk, pushed through the API, or imported by hand.
"""

from __future__ import annotations

from swapprof.dashboards._panels import DATASOURCE, Json, arrange
from swapprof.dashboards._promql import SCOPE

#: the classic JSON model of Grafana 11.6 / 12 (what they export); older Grafanas migrate it
SCHEMA_VERSION = 41
TAGS = ["swapprof"]
#: a metric every swapprof process (master and generations) exposes: the variables' source
ANCHOR = "swapprof_generation"


def _variable(name: str, label: str, definition: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"qryType": 1, "query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }


def variables() -> Json:
    datasource: Json = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "refresh": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }
    return {
        "list": [
            datasource,
            _variable("job", "Job", f"label_values({ANCHOR}, job)"),
            _variable("instance", "Instance", f'label_values({ANCHOR}{{job=~"$job"}}, instance)'),
        ]
    }


def upgrade_annotations() -> Json:
    """Grafana's own annotations, plus one per upgrade: the generation gauge changed."""
    return {
        "list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            },
            {
                "name": "Upgrades",
                "datasource": DATASOURCE,
                "enable": True,
                "hide": False,
                "iconColor": "orange",
                "expr": f"changes({ANCHOR}{{{SCOPE}}}[$__rate_interval]) > 0",
                "titleFormat": "generation changed",
                "textFormat": "{{job}} {{instance}}",
                "tagKeys": "job",
                "useValueForTime": False,
            },
        ]
    }


def dashboard(uid: str, title: str, description: str, panels: list[Json]) -> Json:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "type": "dashboards",
                "title": "swapprof",
                "tags": TAGS,
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": upgrade_annotations(),
        "templating": variables(),
        "panels": arrange(panels),
    }
