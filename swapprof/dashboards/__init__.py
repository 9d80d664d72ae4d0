"""Grafana dashboards and Prometheus rules for swapprof, generated from code.

``export(DIR)`` writes ``swapprof-upgrades.json``, ``swapprof-runtime.json`` and ``rules.yml``
(the files committed under ``dashboards/``); ``push(URL)`` creates or updates the dashboards in a
Grafana through grafana-client (``pip install 'swapprof[dashboards]'``), imported only then.
"""

from swapprof.dashboards._errors import (
    GrafanaAuthError,
    GrafanaError,
    GrafanaUnreachableError,
    MissingExtraError,
)
from swapprof.dashboards._export import RULES_FILE, build_dashboards, build_rules, export, render, stale
from swapprof.dashboards._push import DEFAULT_FOLDER, ENV_TOKEN, PushedDashboard, PushReport, push

__all__ = [
    "DEFAULT_FOLDER",
    "ENV_TOKEN",
    "RULES_FILE",
    "GrafanaAuthError",
    "GrafanaError",
    "GrafanaUnreachableError",
    "MissingExtraError",
    "PushReport",
    "PushedDashboard",
    "build_dashboards",
    "build_rules",
    "export",
    "push",
    "render",
    "stale",
]
